"""Counters each tier keeps, and the frozen snapshot the engine's stats and metrics read."""

from __future__ import annotations

import threading

import attrs


@attrs.frozen(kw_only=True)
class TierStats:
    """Totals since the tier was built. Blocks count whole KV blocks; bytes are payload bytes."""

    tier: str  # "cpu" or "disk"
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


@attrs.define(kw_only=True)
class TierCounters:
    """The mutable side of `TierStats`, safe to bump from a tier's I/O thread."""

    num_hit_blocks: int = 0
    num_stored_blocks: int = 0
    num_evicted_blocks: int = 0
    stored_bytes: int = 0
    loaded_bytes: int = 0
    num_stores: int = 0
    store_time_s: float = 0.0
    num_loads: int = 0
    load_time_s: float = 0.0
    num_load_failures: int = 0
    num_store_failures: int = 0
    num_full_skips: int = 0
    num_invalid_files: int = 0
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False, alias="_lock")

    def add(self, **increments: float) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self, name, getattr(self, name) + value)

    def snapshot(self, *, tier: str, capacity_bytes: int, used_bytes: int) -> TierStats:
        with self._lock:
            values = {
                field.name: getattr(self, field.name)
                for field in attrs.fields(TierCounters)
                if not field.name.startswith("_")
            }
        return TierStats(tier=tier, capacity_bytes=capacity_bytes, used_bytes=used_bytes, **values)
