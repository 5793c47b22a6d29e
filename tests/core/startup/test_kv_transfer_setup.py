"""Start-up with `--kv-transfer-config`: the connector is selected before the model loads, a
name nobody registers is refused with the list of those that are, and the engine runs the
chosen connector's two sides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tenon import LLM
from tenon.plugin_host import PluginSelectionError
from tenon.spec import KVConnectorCapabilities, KVConnectorSpec, hookimpl
from tenon.testing import temporary_distribution
from tenon.testing.kv_connector_harness import ENGINE_ARGS, published, tiny_llama_dir
from tenon_kvconnectors import registration


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama_dir(tmp_path_factory.mktemp("kv-setup") / "model")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TENON_PLUGINS", "TENON_DISABLE_PLUGIN_AUTOLOAD"):
        monkeypatch.delenv(name, raising=False)


def test_unknown_connector_lists_the_registered_ones(model_dir: Path) -> None:
    config = json.dumps({"kv_connector": "SharedStorage", "kv_role": "kv_both"})
    with published(registration.SHARED_STORAGE_SPEC), pytest.raises(
        ValueError, match=r"kv_connector 'SharedStorage', which no plugin registers; registered "
        r"KV connectors: .*SharedStorageConnector"
    ):
        LLM(str(model_dir), kv_transfer_config=config, **ENGINE_ARGS)


@hookimpl
def tenon_kv_connectors() -> list[KVConnectorSpec]:
    return [KVConnectorSpec(
        name="producer-only", target=registration.SHARED_STORAGE_SPEC.target,
        worker_target=registration.SHARED_STORAGE_SPEC.worker_target, api_version="1.0",
        capabilities=KVConnectorCapabilities(roles=("kv_producer",)),
    )]


def test_a_role_the_connector_does_not_serve_is_refused(model_dir: Path, tmp_path: Path) -> None:
    import sys

    config = json.dumps({"kv_connector": "producer-only", "kv_role": "kv_consumer",
                         "kv_connector_extra_config": {"shared_storage_path": str(tmp_path)}})
    with temporary_distribution("producer-only", sys.modules[__name__]), pytest.raises(
        PluginSelectionError, match="kv_role"
    ):
        LLM(str(model_dir), kv_transfer_config=config, **ENGINE_ARGS)


def test_engine_reports_the_connector_and_builds_both_sides(model_dir: Path, tmp_path: Path) -> None:
    from tenon_kvconnectors.shared_storage.scheduler import SharedStorageScheduler
    from tenon_kvconnectors.shared_storage.worker import SharedStorageWorker

    config = json.dumps({"kv_connector": "SharedStorageConnector", "kv_role": "kv_both",
                         "kv_connector_extra_config": {"shared_storage_path": str(tmp_path)}})
    with published(registration.SHARED_STORAGE_SPEC):
        llm = LLM(str(model_dir), kv_transfer_config=config, **ENGINE_ARGS)
    try:
        assert llm.engine.startup.slots["kv connector"] == "SharedStorageConnector as kv_both"
        assert llm.config.kv_transfer.kv_role == "kv_both"
        core = llm.engine.client.core
        assert isinstance(core.scheduler.kv_transfer.connector, SharedStorageScheduler)
        assert isinstance(core.executor.kv_transfer.connector, SharedStorageWorker)
        assert core.scheduler.kv_transfer.block_bytes == core.executor.kv_cache[0].nbytes
    finally:
        llm.shutdown()
    plain = LLM(str(model_dir), **ENGINE_ARGS)
    assert plain.engine.client.core.scheduler.kv_transfer is None
    assert plain.engine.client.core.executor.kv_transfer is None
    plain.shutdown()
