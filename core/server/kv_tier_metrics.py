"""Prometheus series of a KV connector's tiers, one sample per tier (`tier="cpu"`, ...), from
`EngineStats.kv_tier_stats` (see `tenon.engine.kv_tier_stats`); nothing without tiers.

Names follow `tenon.server.metrics` (a `tenon:` prefix, a `model_name` label); vLLM has no
per-tier series, so there is no `vllm:` twin. Counters get `_total` from the client library:

    tenon:kv_offload_hit_blocks_total        blocks loaded back from the tier (prefix hits)
    tenon:kv_offload_stored_blocks_total     blocks written into the tier
    tenon:kv_offload_evicted_blocks_total    LRU evictions to make room
    tenon:kv_offload_stored_bytes_total      bytes moved into the tier
    tenon:kv_offload_loaded_bytes_total      bytes moved from the tier to the device
    tenon:kv_offload_load_failures_total     blocks missing, truncated or corrupted at load
    tenon:kv_offload_store_failures_total    blocks not stored (I/O error, full, backlog)
    tenon:kv_offload_full_skips_total        of those, skipped because the tier was full
    tenon:kv_offload_invalid_files_total     files rejected when the tier started
    tenon:kv_offload_store_seconds           summary: store transfers (count, sum)
    tenon:kv_offload_load_seconds            summary: load transfers (count, sum)
    tenon:kv_offload_used_bytes              gauge
    tenon:kv_offload_capacity_bytes          gauge
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.metrics_core import Metric

from tenon.engine.kv_tier_stats import TierStats

_COUNTERS = (
    ("hit_blocks", "num_hit_blocks", "KV blocks loaded back from the tier."),
    ("stored_blocks", "num_stored_blocks", "KV blocks written into the tier."),
    ("evicted_blocks", "num_evicted_blocks", "KV blocks the tier evicted (LRU) to make room."),
    ("stored_bytes", "stored_bytes", "Bytes moved into the tier."),
    ("loaded_bytes", "loaded_bytes", "Bytes moved from the tier to the device."),
    ("load_failures", "num_load_failures",
     "KV blocks missing, truncated or corrupted when loaded (recomputed instead)."),
    ("store_failures", "num_store_failures", "KV blocks the tier could not store."),
    ("full_skips", "num_full_skips", "KV blocks not stored because the tier was full."),
    ("invalid_files", "num_invalid_files", "Block files rejected when the tier started."),
)
_SUMMARIES = (
    ("store_seconds", "num_stores", "store_time_s", "Time of store transfers into the tier."),
    ("load_seconds", "num_loads", "load_time_s", "Time of load transfers out of the tier."),
)
_GAUGES = (
    ("used_bytes", "used_bytes", "Bytes the tier holds."),
    ("capacity_bytes", "capacity_bytes", "Bytes the tier may hold."),
)


def tier_metric_families(
    stats: Sequence[TierStats], model_name: str, prefix: str = "tenon"
) -> Iterator[Metric]:
    """One family per series above, with a sample per tier; yield them from a collector."""
    if not stats:
        return
    labels = ["model_name", "tier"]
    for name, field, documentation in _COUNTERS:
        counter = CounterMetricFamily(f"{prefix}:kv_offload_{name}", documentation, labels=labels)
        for tier in stats:
            counter.add_metric([model_name, tier.tier], float(getattr(tier, field)))
        yield counter
    for name, count_field, sum_field, documentation in _SUMMARIES:
        summary = SummaryMetricFamily(f"{prefix}:kv_offload_{name}", documentation, labels=labels)
        for tier in stats:
            summary.add_metric([model_name, tier.tier], count_value=getattr(tier, count_field),
                               sum_value=getattr(tier, sum_field))
        yield summary
    for name, field, documentation in _GAUGES:
        gauge = GaugeMetricFamily(f"{prefix}:kv_offload_{name}", documentation, labels=labels)
        for tier in stats:
            gauge.add_metric([model_name, tier.tier], float(getattr(tier, field)))
        yield gauge
