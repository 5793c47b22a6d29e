"""`SharedStorageConnector`: KV blocks exchanged through a directory shared by two engines.

    producer (kv_producer)                      consumer (kv_consumer)
    prefill; request finishes ─> its full       admission: leading blocks whose files exist
    blocks written, one file per block hash     ─> loaded into the KV cache in that step,
    (temp name, fsync, rename)                  checked (header, sizes, sha256); a bad or
                  └──────────> shared_storage_path/ab/abcd...kvblock ──┘ missing one is
                                                                         recomputed

`kv_connector_extra_config`: `{"shared_storage_path": DIRECTORY}` (created when missing).
`kv_both` does both: it loads what is there and saves what it computed.
"""
