"""Registers the connectors of this package (entry point group "tenon.plugins")."""

from __future__ import annotations

from tenon.spec import KVConnectorCapabilities, KVConnectorSpec, hookimpl

SHARED_STORAGE_SPEC = KVConnectorSpec(
    name="SharedStorageConnector",  # vLLM's name, so its --kv-transfer-config works unchanged
    target="tenon_kvconnectors.shared_storage.scheduler:SharedStorageScheduler",
    worker_target="tenon_kvconnectors.shared_storage.worker:SharedStorageWorker",
    api_version="1.0",
    capabilities=KVConnectorCapabilities(),
    description="prefill/decode disaggregation through a shared directory, one file per block",
)


@hookimpl
def tenon_kv_connectors() -> list[KVConnectorSpec]:
    return [SHARED_STORAGE_SPEC]
