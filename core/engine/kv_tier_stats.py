"""Per-tier totals of a KV connector that keeps blocks in tiers (host memory, disk, ...).

A connector's scheduler side that has tiers may expose `tier_stats()`, returning one record per
tier, highest tier first: this `TierStats`, or any object with its field names (`tier`,
`capacity_bytes` and `used_bytes` are required; a counter it lacks reads 0). The engine copies
them into `EngineStats.kv_tier_stats` at each snapshot, and the server exports them as the
`tenon:kv_offload_*` series with a `tier` label (`tenon.server.kv_tier_metrics`).
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen(kw_only=True)
class TierStats:
    """Totals since the tier was built. Blocks count whole KV blocks; bytes are payload bytes."""

    tier: str  # "cpu", "disk", ...
    capacity_bytes: int
    used_bytes: int
    num_hit_blocks: int = 0  # blocks loaded back from this tier (prefix hits served)
    num_stored_blocks: int = 0
    num_evicted_blocks: int = 0  # LRU evictions to make room
    stored_bytes: int = 0  # device (or upper tier) -> this tier
    loaded_bytes: int = 0  # this tier -> device
    num_stores: int = 0  # store transfers finished
    store_time_s: float = 0.0  # summed over finished store transfers
    num_loads: int = 0  # load transfers finished
    load_time_s: float = 0.0
    num_load_failures: int = 0  # blocks missing, truncated or corrupted when loaded
    num_store_failures: int = 0  # blocks not stored because of an I/O error (full included)
    num_full_skips: int = 0  # of those, blocks skipped because the medium or capacity was full
    num_invalid_files: int = 0  # files found truncated, corrupted or foreign at start (deleted)


def as_tier_stats(record: Any) -> TierStats:
    """`record` as a `TierStats`, read by field name (see the module's docstring)."""
    if isinstance(record, TierStats):
        return record
    values = {
        field.name: getattr(record, field.name)
        for field in attrs.fields(TierStats)
        if hasattr(record, field.name)
    }
    return TierStats(**values)
