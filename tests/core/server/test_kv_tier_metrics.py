"""KV tier stats on /metrics: `tenon:kv_offload_*` series per tier from `EngineStats`, across
the engine-core wire, and end to end from a server whose prefix came back from the CPU tier."""

from __future__ import annotations

import importlib.metadata
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

import tenon.startup.engine_builder as engine_builder
from tenon.engine.core import EngineStats
from tenon.engine.kv_tier_stats import TierStats, as_tier_stats
from tenon.engine_args import EngineArgs
from tenon.plugin_host import StaticEntryPoint, load_plugins
from tenon.server.metrics import ServerMetrics
from tenon.server.protocol import (
    Stats,
    TierStatsStruct,
    decode_output,
    encode,
    stats_from_struct,
    stats_to_struct,
)
from tenon.spec import ENTRY_POINT_GROUP
from tenon.startup.engine_builder import build_engine
from tenon.startup.phases import StartupLog
from tests.core.server.inprocess_engine import InProcessAsyncEngine
from tests.core.server.live_server import serve_in_thread
from tests.helpers.tiny_model import VOCAB_SIZE

BASE = {
    "num_requests_running": 0, "num_requests_waiting": 0, "kv_cache_usage_perc": 0.0,
    "num_preemptions_total": 0, "prefix_cache_queries_total": 0, "prefix_cache_hits_total": 0,
}
TIERS = (
    TierStats(tier="cpu", capacity_bytes=4096, used_bytes=2048, num_hit_blocks=7,
              stored_bytes=3072, num_stores=3, store_time_s=0.25),
    TierStats(tier="disk", capacity_bytes=1 << 20, used_bytes=0, num_load_failures=2,
              num_full_skips=5, num_store_failures=5, num_loads=4, load_time_s=1.5),
)


def offload_lines(stats: EngineStats) -> set[str]:
    text = ServerMetrics("tiny").render(stats).decode()
    return {line for line in text.splitlines() if line.startswith("tenon:kv_offload_")}


def test_series_per_tier() -> None:
    lines = offload_lines(EngineStats(**BASE, kv_tier_stats=TIERS))
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
    # 9 counters, 2 summaries (count and sum), 2 gauges, for each of the 2 tiers
    assert len(lines) == 2 * (9 + 2 * 2 + 2)


def test_nothing_without_tiers() -> None:
    assert offload_lines(EngineStats(**BASE)) == set()


def test_tier_stats_cross_the_engine_core_wire_exactly() -> None:
    assert TierStatsStruct.__struct_fields__ == tuple(f.name for f in attrs.fields(TierStats))
    stats = EngineStats(**BASE, kv_connector_hit_tokens_total=40, kv_tier_stats=TIERS)
    decoded = decode_output(encode(stats_to_struct(stats)))
    assert isinstance(decoded, Stats)
    restored = stats_from_struct(decoded)
    assert restored == stats and type(restored.kv_tier_stats) is tuple


@attrs.frozen
class ForeignRecord:
    """A third party's stats record: the same field names, some counters left out."""

    tier: str
    capacity_bytes: int
    used_bytes: int
    num_hit_blocks: int


def test_a_foreign_record_is_read_by_field_name() -> None:
    assert as_tier_stats(ForeignRecord("remote", 10, 4, 3)) == TierStats(
        tier="remote", capacity_bytes=10, used_bytes=4, num_hit_blocks=3)


# The server test: a prefix evicted from a 12-block device cache comes back from the CPU tier.
BLOCK_SIZE = 4
BLOCK_BYTES = 2 * 2 * BLOCK_SIZE * 2 * 16 * 4  # [layers, K/V, tokens, KV heads, head dim], fp32
CPU_TIER_GIB = 1 / 1024  # 1 MiB: 512 blocks
_rng = random.Random(3)
PREFIX = [_rng.randrange(1, VOCAB_SIZE) for _ in range(10 * BLOCK_SIZE)]
# Computed at the finish: the prompt and all but the last of 6 output tokens.
FIRST = PREFIX + [5, 6, 7]  # 43 + 5 computed tokens: 12 full blocks
EVICTOR = [_rng.randrange(1, VOCAB_SIZE) for _ in range(42)]  # 12 blocks: evicts all of FIRST;
# 47 computed tokens: 11 full blocks stored
AGAIN = PREFIX + [9, 10]  # 10 prefix blocks to load; 47 computed tokens: 1 new full block


class WireStatsEngine(InProcessAsyncEngine):
    """Its stats reach /metrics the way the engine-core process sends them."""

    async def stats(self) -> EngineStats:
        return stats_from_struct(decode_output(encode(stats_to_struct(await super().stats()))))  # type: ignore[arg-type]


@pytest.fixture
def kv_tiers_plugin() -> Iterator[None]:
    """The engine loads the kv_tiers plugin whether or not its entry point is installed yet."""
    from tenon.plugins.kv_tiers import registration

    value = "tenon.plugins.kv_tiers.registration"

    def load_with_kv_tiers(**options: Any) -> Any:
        installed = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
        if not any(getattr(ep, "value", None) == value for ep in installed):
            installed.append(StaticEntryPoint(name="kv-tiers", loader=lambda: registration,
                                              distribution="tenon", value=value))
        return load_plugins(entry_points=installed, **options)

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(engine_builder, "load_plugins", load_with_kv_tiers)
        yield


def test_metrics_show_the_cpu_tier_serving_an_evicted_prefix(
    server_model_dir: Path, kv_tiers_plugin: None
) -> None:
    args = EngineArgs(model=str(server_model_dir), dtype="float32", max_model_len=64,
                      block_size=BLOCK_SIZE, num_gpu_blocks_override=12,
                      kv_offloading_size=CPU_TIER_GIB, served_model_name="tiny")

    async def make_engine() -> WireStatsEngine:
        return WireStatsEngine(build_engine(args, log=StartupLog(echo=None)))

    with serve_in_thread(make_engine) as live:
        for prompt in (FIRST, EVICTOR, AGAIN):
            response = httpx.post(f"{live.base_url}/v1/completions", timeout=60, json={
                "model": "tiny", "prompt": prompt, "max_tokens": 6, "temperature": 0.0,
                "ignore_eos": True})
            assert response.status_code == 200, response.text
        text = httpx.get(f"{live.base_url}/metrics", timeout=60).text
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
              for line in text.splitlines() if line.startswith("tenon:kv_")}
    cpu = '{model_name="tiny",tier="cpu"}'
    num_prefix_blocks = len(PREFIX) // BLOCK_SIZE
    assert {name: values[f"tenon:kv_offload_{name}{cpu}"] for name in (
        "hit_blocks_total", "loaded_bytes_total", "stored_blocks_total", "stored_bytes_total",
        "used_bytes", "capacity_bytes", "load_seconds_count", "store_seconds_count",
        "load_failures_total", "store_failures_total", "evicted_blocks_total",
    )} == {
        "hit_blocks_total": num_prefix_blocks,
        "loaded_bytes_total": num_prefix_blocks * BLOCK_BYTES,
        "stored_blocks_total": 12 + 11 + 1,
        "stored_bytes_total": 24 * BLOCK_BYTES,
        "used_bytes": 24 * BLOCK_BYTES,
        "capacity_bytes": 512 * BLOCK_BYTES,
        "load_seconds_count": 1,
        "store_seconds_count": 3,
        "load_failures_total": 0,
        "store_failures_total": 0,
        "evicted_blocks_total": 0,
    }
    assert values[f"tenon:kv_offload_load_seconds_sum{cpu}"] > 0
    assert values['tenon:kv_connector_hit_tokens_total{model_name="tiny"}'] == len(PREFIX)
