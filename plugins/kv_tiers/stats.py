"""Counters each tier keeps. Their frozen snapshot is the engine's `TierStats`
(`tenon.engine.kv_tier_stats`), which `EngineStats` and the server's metrics carry as they are."""

from __future__ import annotations

import threading

import attrs

from tenon.engine.kv_tier_stats import TierStats


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
