"""`--kv-transfer-config`: vLLM's JSON, parsed strictly, with messages that say what to fix."""

from __future__ import annotations

import argparse
import json

import pytest

from tenon.engine_args import EngineArgs
from tenon.kv_transfer_config import KVTransferConfig, parse_kv_transfer_config


def test_vllm_config_parses() -> None:
    text = json.dumps({
        "kv_connector": "SharedStorageConnector", "kv_role": "kv_consumer",
        "kv_connector_extra_config": {"shared_storage_path": "/tmp/kv"},
        "kv_rank": 1, "kv_parallel_size": 2,  # vLLM's, ignored here
    })
    config = parse_kv_transfer_config(text)
    assert config == KVTransferConfig(
        kv_connector="SharedStorageConnector", kv_role="kv_consumer",
        kv_connector_extra_config={"shared_storage_path": "/tmp/kv"},
    )
    assert (config.is_consumer, config.is_producer) == (True, False)
    assert parse_kv_transfer_config({"kv_connector": "X"}) == KVTransferConfig(
        kv_connector="X", kv_role="kv_both", kv_connector_extra_config={}
    )
    assert parse_kv_transfer_config(None) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"kv_connector": "X",', "not valid JSON"),
        ("[1, 2]", "must be a JSON object, got list"),
        ('{"kv_role": "kv_both"}', 'needs "kv_connector"'),
        ('{"kv_connector": "X", "kv_role": "kv_sender"}', "kv_role 'kv_sender' is not one of"),
        ('{"kv_connector": "X", "kv_conector_extra_config": {}}', "unknown keys \\['kv_conector_extra_config'\\]"),
        ('{"kv_connector": "X", "kv_connector_extra_config": 3}', "must be a JSON object, got int"),
    ],
)
def test_bad_config_says_what_to_fix(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_kv_transfer_config(value)
    with pytest.raises(ValueError, match=message):
        EngineArgs(kv_transfer_config=value)


def test_flag_reaches_the_engine_args() -> None:
    parser = argparse.ArgumentParser()
    EngineArgs.add_cli_args(parser)
    text = '{"kv_connector": "SharedStorageConnector", "kv_role": "kv_producer"}'
    args = EngineArgs.from_cli_args(parser.parse_args(["--kv-transfer-config", text]))
    assert args.kv_transfer_config == text
    assert EngineArgs.from_cli_args(parser.parse_args([])).kv_transfer_config is None
