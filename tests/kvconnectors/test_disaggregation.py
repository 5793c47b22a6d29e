"""Prefill/decode disaggregation across processes: a producer engine in a subprocess prefills
into a shared directory; the consumer here loads and decodes. Its greedy tokens equal a single
engine's, and it computes at most the prompt's last block itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tenon import LLM, SamplingParams
from tenon.testing.hf_reference import VOCAB_SIZE, random_prompts
from tenon.testing.kv_connector_harness import (
    BLOCK_SIZE,
    ENGINE_ARGS,
    published,
    tiny_llama_dir,
    transfer_config,
)
from tenon_kvconnectors.registration import SHARED_STORAGE_SPEC

PRODUCER = Path(__file__).with_name("disaggregation_producer.py")
PROMPT_LENS = (33, 40, 7, 2)
MAX_TOKENS = 10


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama_dir(tmp_path_factory.mktemp("disaggregation") / "model")


def greedy(llm: LLM, prompts: list[list[int]]) -> list[tuple[list[int], int]]:
    params = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True)
    outputs = llm.generate([{"prompt_token_ids": prompt} for prompt in prompts], params)
    return [(list(output.outputs[0].token_ids), output.num_cached_tokens) for output in outputs]


def test_consumer_decodes_what_a_producer_process_prefilled(model_dir: Path, tmp_path: Path) -> None:
    prompts = random_prompts(PROMPT_LENS, VOCAB_SIZE, seed=21)
    store = tmp_path / "store"
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    produced = subprocess.run(
        [sys.executable, str(PRODUCER), str(model_dir), str(store), json.dumps(prompts)],
        capture_output=True, text=True, timeout=300, env=environment, check=False,
    )
    assert produced.returncode == 0, produced.stderr[-3000:]
    producer_stats = json.loads(produced.stdout.strip().splitlines()[-1])
    # Every full prompt block was stored: 8 + 10 + 1 + 0 blocks.
    num_stored_blocks = sum(len(prompt) // BLOCK_SIZE for prompt in prompts)
    assert len(list(store.rglob("*.kvblock"))) == num_stored_blocks == 19
    assert producer_stats["kv_connector_stores_total"] == 3
    assert producer_stats["kv_connector_hit_tokens_total"] == 0

    single = LLM(str(model_dir), **ENGINE_ARGS)
    expected = greedy(single, prompts)
    single.shutdown()

    with published(SHARED_STORAGE_SPEC):  # as installed, or through a temporary entry point
        config = transfer_config(
            "SharedStorageConnector", "kv_consumer", {"shared_storage_path": str(store)}
        )
        consumer = LLM(str(model_dir), kv_transfer_config=config, **ENGINE_ARGS)
        got = greedy(consumer, prompts)
        stats = consumer.engine.client.stats()
        consumer.shutdown()
    assert [tokens for tokens, _ in got] == [tokens for tokens, _ in expected]
    assert all(cached == 0 for _, cached in expected)
    # The consumer computed only the tokens of each prompt's last block: 1, 4, 3 and 2 tokens.
    computed_tokens = [len(prompt) - cached for prompt, (_, cached) in zip(prompts, got, strict=True)]
    assert computed_tokens == [1, 4, 3, 2]
    assert stats.kv_connector_hit_tokens_total == 32 + 36 + 4 == 72
    assert stats.kv_connector_failed_blocks_total == 0
    assert stats.prefix_cache_hits_total == 0
