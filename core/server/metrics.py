"""Prometheus metrics under vLLM's names, each exported twice: `vllm:<name>` and `tenon:<name>`.

Dashboards and autoscalers written for vLLM read the `vllm:` family unchanged; `tenon:` is the
project's own name for the same numbers. Every series carries a `model_name` label.

Two sources feed them:
- the engine core's `EngineStats`, fetched at each scrape (`await engine.stats()`): running and
  waiting requests, KV cache usage, preemptions and prefix-cache counters, and with a KV
  connector its `tenon:kv_connector_*` totals (`kv_transfer_metrics`) and its tiers'
  `tenon:kv_offload_*` series (`kv_tier_metrics`). They are exposed by a collector that
  reports the latest snapshot, since the totals are counted in the core.
- the frontend, per engine request: prompt and generated tokens, finish reasons, time to first
  token, inter-token latency, end-to-end latency and queue time.

Each app gets its own `CollectorRegistry` (no module-level state), so several apps in one
process (tests) never share counts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from tenon.engine.core import EngineStats
from tenon.server.kv_tier_metrics import tier_metric_families
from tenon.server.kv_transfer_metrics import kv_transfer_metrics

PREFIXES: tuple[str, ...] = ("vllm", "tenon")

# Buckets as vLLM's, so quantiles computed by existing dashboards line up.
TIME_TO_FIRST_TOKEN_BUCKETS_S = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                                 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
INTER_TOKEN_LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
                                 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
REQUEST_LATENCY_BUCKETS_S = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
                             50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)


class EngineStatsCollector(Collector):
    """Reports the latest `EngineStats` snapshot as gauges and counters."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.snapshot = EngineStats(
            num_requests_running=0, num_requests_waiting=0, kv_cache_usage_perc=0.0,
            num_preemptions_total=0, prefix_cache_queries_total=0, prefix_cache_hits_total=0,
        )

    def collect(self) -> Iterator[Metric]:
        stats = self.snapshot
        gauges = (
            ("num_requests_running", "Requests in the engine's running batch.",
             stats.num_requests_running),
            ("num_requests_waiting", "Requests waiting to be scheduled.",
             stats.num_requests_waiting),
            ("kv_cache_usage_perc", "Fraction of KV cache blocks in use (0 to 1).",
             stats.kv_cache_usage_perc),
        )
        counters = (
            ("num_preemptions", "Requests preempted by the scheduler.",
             stats.num_preemptions_total),
            ("prefix_cache_queries", "Prompt tokens looked up in the prefix cache.",
             stats.prefix_cache_queries_total),
            ("prefix_cache_hits", "Prompt tokens found in the prefix cache.",
             stats.prefix_cache_hits_total),
        )
        for prefix in PREFIXES:
            for name, documentation, value in gauges:
                gauge = GaugeMetricFamily(f"{prefix}:{name}", documentation, labels=["model_name"])
                gauge.add_metric([self.model_name], float(value))
                yield gauge
            for name, documentation, value in counters:
                counter = CounterMetricFamily(f"{prefix}:{name}", documentation,
                                              labels=["model_name"])
                counter.add_metric([self.model_name], float(value))
                yield counter
        yield from kv_transfer_metrics(stats, self.model_name)
        yield from tier_metric_families(stats.kv_tier_stats, self.model_name)


class ServerMetrics:
    """The app's metrics. `record_*` are called by the serving code; `render` by /metrics."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.registry = CollectorRegistry(auto_describe=True)
        self.engine_stats = EngineStatsCollector(model_name)
        self.registry.register(self.engine_stats)
        labels = ["model_name"]
        self._prompt_tokens = self._twin_counters("prompt_tokens", "Prefill tokens processed.")
        self._generation_tokens = self._twin_counters("generation_tokens", "Tokens generated.")
        self._success = [
            Counter(f"{prefix}:request_success", "Finished requests, by finish reason.",
                    ["model_name", "finished_reason"], registry=self.registry)
            for prefix in PREFIXES
        ]
        self._time_to_first_token = self._twin_histograms(
            "time_to_first_token_seconds", "Time from arrival to the first generated token.",
            TIME_TO_FIRST_TOKEN_BUCKETS_S, labels)
        self._inter_token_latency = self._twin_histograms(
            "inter_token_latency_seconds", "Time between successive outputs of a request.",
            INTER_TOKEN_LATENCY_BUCKETS_S, labels)
        self._e2e_latency = self._twin_histograms(
            "e2e_request_latency_seconds", "Time from arrival to the request's end.",
            REQUEST_LATENCY_BUCKETS_S, labels)
        self._queue_time = self._twin_histograms(
            "request_queue_time_seconds",
            "Time from arrival until the engine accepted the request (frontend side).",
            REQUEST_LATENCY_BUCKETS_S, labels)

    def _twin_counters(self, name: str, documentation: str) -> list[Counter]:
        return [Counter(f"{prefix}:{name}", documentation, ["model_name"], registry=self.registry)
                for prefix in PREFIXES]

    def _twin_histograms(self, name: str, documentation: str, buckets: Sequence[float],
                         labels: list[str]) -> list[Histogram]:
        return [Histogram(f"{prefix}:{name}", documentation, labels, buckets=buckets,
                          registry=self.registry)
                for prefix in PREFIXES]

    def _observe(self, histograms: list[Histogram], value_s: float) -> None:
        for histogram in histograms:
            histogram.labels(model_name=self.model_name).observe(value_s)

    def record_queued(self, queue_time_s: float) -> None:
        self._observe(self._queue_time, queue_time_s)

    def record_first_token(self, num_prompt_tokens: int, time_to_first_token_s: float) -> None:
        for counter in self._prompt_tokens:
            counter.labels(model_name=self.model_name).inc(num_prompt_tokens)
        self._observe(self._time_to_first_token, time_to_first_token_s)

    def record_generated(self, num_tokens: int, inter_token_latency_s: float | None) -> None:
        for counter in self._generation_tokens:
            counter.labels(model_name=self.model_name).inc(num_tokens)
        if inter_token_latency_s is not None:
            self._observe(self._inter_token_latency, inter_token_latency_s)

    def record_finished(self, finish_reason: str, e2e_latency_s: float) -> None:
        for counter in self._success:
            counter.labels(model_name=self.model_name, finished_reason=finish_reason).inc()
        self._observe(self._e2e_latency, e2e_latency_s)

    def render(self, stats: EngineStats | None) -> bytes:
        """The exposition text; `stats` None keeps the last snapshot (engine unreachable)."""
        if stats is not None:
            self.engine_stats.snapshot = stats
        return generate_latest(self.registry)
