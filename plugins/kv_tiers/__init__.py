"""KV cache tiers below the device (host memory, disk) and the offloading connector over them.

- `cpu_tier.CPUTier`: one preallocated host slab (pinned on GPUs), LRU within its capacity.
- `disk_tier.DiskTier`: one checksummed file per block (`disk_format`, `disk_files`), written
  in the background (temp file, fsync, rename), index rebuilt from the directory at start.
- `chain.TierChain`: the tiers in order (CPU, then disk): write-through stores, loads from the
  highest tier that holds a block.
- `connector_scheduler` / `connector_worker`: the OffloadingConnector, the KV connector that
  plugs the chain into the engine (as vLLM's CPU offloading does); `offloading_config` turns
  the `--kv-offloading-*` flags into its configuration and gives both sides one session.
- `stats`: per-tier counters; their snapshot, `tenon.engine.kv_tier_stats.TierStats`, reaches
  `EngineStats.kv_tier_stats` through the connector's `tier_stats()` and /metrics as the
  `tenon:kv_offload_*` series (`tenon.server.kv_tier_metrics`).
- `registration`: the `cpu` and `disk` tiers, the connector, and the `tenon_configure` hook.
"""
