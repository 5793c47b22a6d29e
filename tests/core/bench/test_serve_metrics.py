"""Summaries of a run from hand-built results: exact values against plain references."""

from __future__ import annotations

import math
import random

import pytest

from tenon.bench.serve_client import RequestResult
from tenon.bench.serve_metrics import (
    NUM_ERRORS_KEPT,
    compute_metrics,
    format_metrics,
    summarize_ms,
)


def reference_percentile(samples: list[float], percent: float) -> float:
    """Linear interpolation between the two closest ranks."""
    ordered = sorted(samples)
    rank = percent / 100 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def test_summary_of_known_values() -> None:
    summary = summarize_ms([0.001, 0.002, 0.003, 0.004])
    assert summary is not None
    assert summary.mean_ms == pytest.approx(2.5, abs=1e-12)
    assert summary.median_ms == pytest.approx(2.5, abs=1e-12)
    assert summary.p90_ms == pytest.approx(3.7, abs=1e-12)
    assert summary.p99_ms == pytest.approx(3.97, abs=1e-12)
    assert summarize_ms([]) is None


@pytest.mark.parametrize("num_samples", [1, 2, 7, 101])
def test_summary_matches_reference(num_samples: int) -> None:
    rng = random.Random(num_samples)
    samples_s = [rng.uniform(0.001, 0.2) for _ in range(num_samples)]
    samples_ms = [sample * 1000 for sample in samples_s]
    summary = summarize_ms(samples_s)
    assert summary is not None
    assert summary.mean_ms == pytest.approx(sum(samples_ms) / num_samples, rel=1e-12)
    assert summary.median_ms == pytest.approx(reference_percentile(samples_ms, 50), rel=1e-12)
    assert summary.p90_ms == pytest.approx(reference_percentile(samples_ms, 90), rel=1e-12)
    assert summary.p99_ms == pytest.approx(reference_percentile(samples_ms, 99), rel=1e-12)


def ok(prompt_tokens: int, ttft_s: float, itl_s: list[float], output_tokens: int | None) -> RequestResult:
    return RequestResult(prompt_tokens=prompt_tokens, success=True, ttft_s=ttft_s,
                         latency_s=ttft_s + sum(itl_s), itl_s=itl_s, num_text_chunks=len(itl_s) + 1,
                         output_tokens=output_tokens, generated_text="a b c")


def failed(error: str) -> RequestResult:
    return RequestResult(prompt_tokens=10, error=error)


def test_run_metrics_exact() -> None:
    results = [
        ok(10, 0.1, [0.02, 0.04], output_tokens=3),     # TPOT 0.03
        failed("HTTP 400 Bad Request: x"),
        ok(20, 0.3, [0.05] * 4, output_tokens=9),       # TPOT 0.2 / 8 = 0.025
        ok(30, 0.2, [], output_tokens=1),               # one token: no TPOT
        failed("HTTP 400 Bad Request: x"),
        ok(40, 0.4, [0.1], output_tokens=None),         # falls back to the counter: 3 tokens
        failed("ClientPayloadError: cut"),
    ]
    metrics = compute_metrics(results, duration_s=2.0, count_tokens=lambda text: len(text.split()))
    assert metrics.num_completed == 4 and metrics.num_failed == 3
    assert metrics.total_input_tokens == 100
    assert metrics.total_output_tokens == 3 + 9 + 1 + 3
    assert metrics.requests_per_s == 2.0
    assert metrics.output_tokens_per_s == 8.0
    assert metrics.total_tokens_per_s == 58.0
    assert metrics.errors == ("HTTP 400 Bad Request: x", "ClientPayloadError: cut")
    assert metrics.ttft is not None and metrics.tpot is not None
    assert metrics.itl is not None and metrics.e2el is not None
    assert metrics.ttft.mean_ms == pytest.approx(250.0)
    assert metrics.ttft.median_ms == pytest.approx(250.0)
    expected_tpots_ms = [30.0, 25.0, 0.1 / 2 * 1000]
    assert metrics.tpot.mean_ms == pytest.approx(sum(expected_tpots_ms) / 3)
    assert metrics.tpot.median_ms == pytest.approx(30.0)
    itls_ms = [20.0, 40.0, 50.0, 50.0, 50.0, 50.0, 100.0]
    assert metrics.itl.mean_ms == pytest.approx(sum(itls_ms) / len(itls_ms))
    assert metrics.itl.p90_ms == pytest.approx(reference_percentile(itls_ms, 90))
    assert metrics.e2el.p99_ms == pytest.approx(reference_percentile([160.0, 500.0, 200.0, 500.0], 99))

    record = metrics.as_dict()
    for name in ("ttft", "tpot", "itl", "e2el"):
        for statistic in ("mean", "median", "p90", "p99"):
            assert isinstance(record[f"{statistic}_{name}_ms"], float)
    assert record["num_failed"] == 3 and record["errors"] == list(metrics.errors)
    table = format_metrics(metrics)
    assert "Failed requests:                                 3" in table
    assert "error: ClientPayloadError: cut" in table


def test_errors_kept_are_the_first_distinct_ones() -> None:
    results = [failed(f"error {index % 7}") for index in range(20)]
    metrics = compute_metrics(results, duration_s=1.0)
    assert metrics.errors == tuple(f"error {index}" for index in range(NUM_ERRORS_KEPT))
    assert metrics.num_completed == 0 and metrics.num_failed == 20
    assert metrics.ttft is None and metrics.output_tokens_per_s == 0.0
    assert metrics.as_dict()["p99_ttft_ms"] is None
    assert "n/a" in format_metrics(metrics)


def test_duration_must_be_positive() -> None:
    with pytest.raises(ValueError, match="duration_s"):
        compute_metrics([], duration_s=0.0)
