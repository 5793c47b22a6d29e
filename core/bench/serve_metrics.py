"""Summaries of a serving run, computed as `vllm bench serve` computes them.

Throughputs divide by the whole run's duration and count successful requests only. TPOT per
request is `(latency - ttft) / (output_tokens - 1)`, defined only when a request produced more
than one token. ITL pools every gap of every successful request. Percentiles interpolate
linearly between samples (`numpy.percentile`'s default). A summary of no samples is None.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np

from tenon.bench.serve_client import RequestResult

NUM_ERRORS_KEPT = 5


@attrs.frozen
class LatencySummary:
    mean_ms: float
    median_ms: float
    p90_ms: float
    p99_ms: float


def summarize_ms(samples_s: Sequence[float]) -> LatencySummary | None:
    if not samples_s:
        return None
    # samples_ms: [num_samples]
    samples_ms = np.asarray(samples_s, dtype=np.float64) * 1000.0
    return LatencySummary(
        mean_ms=float(samples_ms.mean()),
        median_ms=float(np.median(samples_ms)),
        p90_ms=float(np.percentile(samples_ms, 90)),
        p99_ms=float(np.percentile(samples_ms, 99)),
    )


@attrs.frozen
class ServeMetrics:
    duration_s: float
    num_completed: int
    num_failed: int
    total_input_tokens: int
    total_output_tokens: int
    requests_per_s: float
    output_tokens_per_s: float
    total_tokens_per_s: float
    ttft: LatencySummary | None
    tpot: LatencySummary | None
    itl: LatencySummary | None
    e2el: LatencySummary | None
    errors: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """Flat, with vLLM's latency key names (`mean_ttft_ms`, `p99_tpot_ms`, ...)."""
        record: dict[str, Any] = {
            "duration_s": self.duration_s,
            "num_completed": self.num_completed,
            "num_failed": self.num_failed,
            "total_input_tokens": self.total_input_tokens,
            "total_output_tokens": self.total_output_tokens,
            "requests_per_s": self.requests_per_s,
            "output_tokens_per_s": self.output_tokens_per_s,
            "total_tokens_per_s": self.total_tokens_per_s,
        }
        for name in ("ttft", "tpot", "itl", "e2el"):
            summary: LatencySummary | None = getattr(self, name)
            for statistic in ("mean", "median", "p90", "p99"):
                record[f"{statistic}_{name}_ms"] = (
                    None if summary is None else getattr(summary, f"{statistic}_ms")
                )
        record["errors"] = list(self.errors)
        return record


def output_token_count(result: RequestResult, count_tokens: Callable[[str], int] | None) -> int:
    """The server's `usage.completion_tokens`; else the tokenizer's count of the text; else the
    number of chunks that carried text."""
    if result.output_tokens is not None:
        return result.output_tokens
    if count_tokens is not None:
        return count_tokens(result.generated_text)
    return result.num_text_chunks


def compute_metrics(
    results: Sequence[RequestResult],
    duration_s: float,
    *,
    count_tokens: Callable[[str], int] | None = None,
) -> ServeMetrics:
    """`errors` keeps the first `NUM_ERRORS_KEPT` distinct error texts, in request order."""
    if duration_s <= 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    completed = [result for result in results if result.success]
    errors: list[str] = []
    for result in results:
        if not result.success and len(errors) < NUM_ERRORS_KEPT:
            error = result.error or "unknown error"
            if error not in errors:
                errors.append(error)
    output_tokens = [output_token_count(result, count_tokens) for result in completed]
    ttfts_s: list[float] = []
    e2els_s: list[float] = []
    tpots_s: list[float] = []
    itls_s: list[float] = []
    for result, num_output_tokens in zip(completed, output_tokens, strict=True):
        assert result.ttft_s is not None and result.latency_s is not None
        ttfts_s.append(result.ttft_s)
        e2els_s.append(result.latency_s)
        itls_s.extend(result.itl_s)
        if num_output_tokens > 1:
            tpots_s.append((result.latency_s - result.ttft_s) / (num_output_tokens - 1))
    total_input_tokens = sum(result.prompt_tokens for result in completed)
    total_output_tokens = sum(output_tokens)
    return ServeMetrics(
        duration_s=duration_s,
        num_completed=len(completed),
        num_failed=len(results) - len(completed),
        total_input_tokens=total_input_tokens,
        total_output_tokens=total_output_tokens,
        requests_per_s=len(completed) / duration_s,
        output_tokens_per_s=total_output_tokens / duration_s,
        total_tokens_per_s=(total_input_tokens + total_output_tokens) / duration_s,
        ttft=summarize_ms(ttfts_s),
        tpot=summarize_ms(tpots_s),
        itl=summarize_ms(itls_s),
        e2el=summarize_ms(e2els_s),
        errors=tuple(errors),
    )


def format_metrics(metrics: ServeMetrics) -> str:
    """A table in the shape of vLLM's `Serving Benchmark Result`."""
    lines = [
        "============ Serving Benchmark Result ============",
        f"{'Successful requests:':<40}{metrics.num_completed:>10}",
        f"{'Failed requests:':<40}{metrics.num_failed:>10}",
        f"{'Benchmark duration (s):':<40}{metrics.duration_s:>10.2f}",
        f"{'Total input tokens:':<40}{metrics.total_input_tokens:>10}",
        f"{'Total generated tokens:':<40}{metrics.total_output_tokens:>10}",
        f"{'Request throughput (req/s):':<40}{metrics.requests_per_s:>10.2f}",
        f"{'Output token throughput (tok/s):':<40}{metrics.output_tokens_per_s:>10.2f}",
        f"{'Total token throughput (tok/s):':<40}{metrics.total_tokens_per_s:>10.2f}",
    ]
    for name, title in (("ttft", "Time to First Token"), ("tpot", "Time per Output Token (excl. 1st)"),
                        ("itl", "Inter-token Latency"), ("e2el", "End-to-end Latency")):
        summary: LatencySummary | None = getattr(metrics, name)
        lines.append(f"{title:-^50}")
        for statistic in ("mean", "median", "p90", "p99"):
            value = "n/a" if summary is None else f"{getattr(summary, f'{statistic}_ms'):.2f}"
            label = f"{statistic.capitalize() if statistic in ('mean', 'median') else statistic.upper()} {name.upper()} (ms):"
            lines.append(f"{label:<40}{value:>10}")
    lines.append("=" * 50)
    for error in metrics.errors:
        lines.append(f"error: {error}")
    return "\n".join(lines)
