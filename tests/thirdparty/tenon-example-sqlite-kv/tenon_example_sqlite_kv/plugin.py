"""The registration module named by this package's entry point."""

from __future__ import annotations

from tenon.spec import KVConnectorCapabilities, KVConnectorSpec, hookimpl

SPEC = KVConnectorSpec(
    name="example-sqlite-kv",
    target="tenon_example_sqlite_kv.connector:SQLiteKVScheduler",
    worker_target="tenon_example_sqlite_kv.connector:SQLiteKVWorker",
    api_version="1.0",
    capabilities=KVConnectorCapabilities(),
    description="KV blocks in one SQLite database (extra config: db_path)",
)


@hookimpl
def tenon_kv_connectors() -> list[KVConnectorSpec]:
    return [SPEC]
