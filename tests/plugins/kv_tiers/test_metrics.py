"""The tiers' Prometheus series: names, labels and values from `TierStats`."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from tenon.plugins.kv_tiers.metrics import tier_metric_families
from tenon.plugins.kv_tiers.stats import TierStats

STATS = [
    TierStats(tier="cpu", capacity_bytes=4096, used_bytes=2048, num_hit_blocks=7,
              stored_bytes=3072, num_stores=3, store_time_s=0.25),
    TierStats(tier="disk", capacity_bytes=1 << 20, used_bytes=0, num_load_failures=2,
              num_full_skips=5, num_store_failures=5, num_loads=4, load_time_s=1.5),
]


class _Collector(Collector):
    def collect(self) -> Iterator[Metric]:
        return tier_metric_families(STATS, "tiny")


def test_series_per_tier() -> None:
    registry = CollectorRegistry()
    registry.register(_Collector())
    lines = set(generate_latest(registry).decode().splitlines())
    expected = {
        'tenon:kv_offload_hit_blocks_total{model_name="tiny",tier="cpu"} 7.0',
        'tenon:kv_offload_hit_blocks_total{model_name="tiny",tier="disk"} 0.0',
        'tenon:kv_offload_stored_bytes_total{model_name="tiny",tier="cpu"} 3072.0',
        'tenon:kv_offload_load_failures_total{model_name="tiny",tier="disk"} 2.0',
        'tenon:kv_offload_full_skips_total{model_name="tiny",tier="disk"} 5.0',
        'tenon:kv_offload_store_seconds_count{model_name="tiny",tier="cpu"} 3.0',
        'tenon:kv_offload_store_seconds_sum{model_name="tiny",tier="cpu"} 0.25',
        'tenon:kv_offload_load_seconds_sum{model_name="tiny",tier="disk"} 1.5',
        'tenon:kv_offload_used_bytes{model_name="tiny",tier="cpu"} 2048.0',
        'tenon:kv_offload_capacity_bytes{model_name="tiny",tier="disk"} 1.048576e+06',
    }
    assert expected <= lines
    assert len([line for line in lines if line.startswith("tenon:kv_offload_")]) == 2 * (9 + 4 + 2)
