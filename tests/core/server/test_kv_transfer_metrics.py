"""The KV connector's counters on /metrics: `tenon:` names, exact values, absent without one."""

from __future__ import annotations

from tenon.engine.core import EngineStats
from tenon.server.metrics import ServerMetrics

BASE = {
    "num_requests_running": 0, "num_requests_waiting": 0, "kv_cache_usage_perc": 0.0,
    "num_preemptions_total": 0, "prefix_cache_queries_total": 0, "prefix_cache_hits_total": 0,
}


def metric_lines(stats: EngineStats) -> list[str]:
    text = ServerMetrics("tiny").render(stats).decode()
    return [line for line in text.splitlines() if line.startswith("tenon:kv_connector")]


def test_connector_counters_and_latency_summaries() -> None:
    stats = EngineStats(
        **BASE, kv_connector_queried_tokens_total=80, kv_connector_hit_tokens_total=72,
        kv_connector_load_bytes_total=36864, kv_connector_store_bytes_total=40960,
        kv_connector_load_seconds_total=0.25, kv_connector_load_steps_total=2,
        kv_connector_store_seconds_total=1.5, kv_connector_stores_total=3,
        kv_connector_failed_blocks_total=4, kv_connector_recomputed_requests_total=1,
    )
    lines = metric_lines(stats)
    label = '{model_name="tiny"}'
    for line in (
        f"tenon:kv_connector_queried_tokens_total{label} 80.0",
        f"tenon:kv_connector_hit_tokens_total{label} 72.0",
        f"tenon:kv_connector_load_bytes_total{label} 36864.0",
        f"tenon:kv_connector_store_bytes_total{label} 40960.0",
        f"tenon:kv_connector_failed_blocks_total{label} 4.0",
        f"tenon:kv_connector_recomputed_requests_total{label} 1.0",
        f"tenon:kv_connector_load_seconds_count{label} 2.0",
        f"tenon:kv_connector_load_seconds_sum{label} 0.25",
        f"tenon:kv_connector_store_seconds_count{label} 3.0",
        f"tenon:kv_connector_store_seconds_sum{label} 1.5",
    ):
        assert line in lines, line


def test_nothing_extra_without_a_connector() -> None:
    assert metric_lines(EngineStats(**BASE)) == []
