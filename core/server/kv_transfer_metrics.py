"""Prometheus metrics of the KV connector, from the engine's `EngineStats` snapshot.

`tenon:` names only (vLLM has no equivalents to mirror). Reported only when a connector has
done something, so engines without one export nothing extra:

    tenon:kv_connector_queried_tokens   prompt tokens past the local prefix hit looked up
    tenon:kv_connector_hit_tokens       of those, tokens loaded from the connector
    tenon:kv_connector_load_bytes       bytes loaded into the KV cache
    tenon:kv_connector_store_bytes      bytes the connector reports stored
    tenon:kv_connector_failed_blocks    blocks whose load failed (their tokens were recomputed)
    tenon:kv_connector_recomputed_requests  requests sent back to recompute after a failed load
    tenon:kv_connector_load_seconds     summary: per step that loaded, the time it waited
    tenon:kv_connector_store_seconds    summary: per request, its finish until its save was done
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, SummaryMetricFamily
from prometheus_client.metrics_core import Metric

from tenon.engine.core import EngineStats


def kv_transfer_metrics(stats: EngineStats, model_name: str) -> Iterator[Metric]:
    if not (stats.kv_connector_queried_tokens_total or stats.kv_connector_stores_total):
        return
    counters = (
        ("kv_connector_queried_tokens", "Prompt tokens past the local prefix hit looked up in "
         "the KV connector.", stats.kv_connector_queried_tokens_total),
        ("kv_connector_hit_tokens", "Prompt tokens loaded from the KV connector.",
         stats.kv_connector_hit_tokens_total),
        ("kv_connector_load_bytes", "Bytes loaded into the KV cache by the KV connector.",
         stats.kv_connector_load_bytes_total),
        ("kv_connector_store_bytes", "Bytes the KV connector reports stored.",
         stats.kv_connector_store_bytes_total),
        ("kv_connector_failed_blocks", "KV blocks whose load failed; their tokens were "
         "recomputed.", stats.kv_connector_failed_blocks_total),
        ("kv_connector_recomputed_requests", "Requests recomputed after a failed KV load.",
         stats.kv_connector_recomputed_requests_total),
    )
    for name, documentation, value in counters:
        counter = CounterMetricFamily(f"tenon:{name}", documentation, labels=["model_name"])
        counter.add_metric([model_name], float(value))
        yield counter
    summaries = (
        ("kv_connector_load_seconds", "Time a step waited for its KV loads.",
         stats.kv_connector_load_steps_total, stats.kv_connector_load_seconds_total),
        ("kv_connector_store_seconds", "Time from a request's finish until its KV was stored.",
         stats.kv_connector_stores_total, stats.kv_connector_store_seconds_total),
    )
    for name, documentation, count, total_s in summaries:
        summary = SummaryMetricFamily(f"tenon:{name}", documentation, labels=["model_name"])
        summary.add_metric([model_name], count_value=count, sum_value=total_s)
        yield summary
