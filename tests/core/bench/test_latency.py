"""The latency benchmark's loop and arithmetic, against a fake `LLM` that records its calls."""

from __future__ import annotations

import statistics
from typing import Any

import attrs
import numpy as np
import pytest

from tenon.bench.latency import LatencyResult, LatencySettings, run_latency


@attrs.define
class _HFConfig:
    vocab_size: int


@attrs.define
class _Engine:
    hf_config: _HFConfig


@attrs.define
class FakeLLM:
    """Answers every request with `max_tokens` tokens (or `short_by` fewer) and records calls."""

    engine: _Engine = attrs.field(factory=lambda: _Engine(_HFConfig(vocab_size=50)))
    calls: list[tuple[list[list[int]], Any]] = attrs.field(factory=list)
    short_by: int = 0

    def generate(self, prompts: list[dict[str, list[int]]], params: Any) -> list[Any]:
        self.calls.append(([p["prompt_token_ids"] for p in prompts], params))
        completion = attrs.make_class("Completion", ["token_ids"])
        request = attrs.make_class("Request", ["outputs"])
        return [request([completion(list(range(params.max_tokens - self.short_by)))]) for _ in prompts]


def test_run_times_warmup_full_and_one_token_batches_on_fresh_prompts() -> None:
    llm = FakeLLM()
    settings = LatencySettings(input_len=6, output_len=5, batch_size=3, num_iters_warmup=2, num_iters=4, seed=7)
    result = run_latency(llm, settings)
    assert [params.max_tokens for _, params in llm.calls] == [5] * 6 + [1] * 4
    assert all(p.ignore_eos and p.temperature == 0.0 and not p.detokenize for _, p in llm.calls)
    assert len(result.latencies_s) == 4 and len(result.first_token_latencies_s) == 4
    batches = [prompts for prompts, _ in llm.calls]
    assert all(len(batch) == 3 and all(len(p) == 6 and max(p) < 50 for p in batch) for batch in batches)
    # No prompt repeats, so prefix caching cannot serve any of them.
    flat = [tuple(p) for batch in batches for p in batch]
    assert len(set(flat)) == len(flat)
    # Seeded: the same settings give the same prompts.
    again = FakeLLM()
    run_latency(again, settings)
    assert [prompts for prompts, _ in again.calls] == batches


def test_short_outputs_are_an_error() -> None:
    with pytest.raises(RuntimeError, match=r"asked for 5 tokens per request, got \[4\]"):
        run_latency(FakeLLM(short_by=1), LatencySettings(input_len=2, output_len=5, num_iters_warmup=0, num_iters=1))


def test_ttft_tpot_and_rates_from_the_two_runs() -> None:
    settings = LatencySettings(input_len=4, output_len=11, batch_size=2, num_iters=4)
    latencies_s = (1.0, 1.2, 1.1, 1.5)
    first_s = (0.10, 0.12, 0.14, 0.16)
    result = LatencyResult(settings=settings, latencies_s=latencies_s, first_token_latencies_s=first_s)
    mean_s, ttft_s = 1.2, 0.13
    assert result.mean_latency_s == pytest.approx(mean_s) and result.ttft_s == pytest.approx(ttft_s)
    assert result.tpot_s == pytest.approx((mean_s - ttft_s) / 10)
    assert result.decode_tokens_per_s == pytest.approx(10 / (mean_s - ttft_s))
    assert result.stream_output_tokens_per_s == pytest.approx(11 / mean_s)
    assert result.output_tokens_per_s == pytest.approx(2 * 11 / mean_s)
    summary = result.as_dict()
    samples_ms = np.array(latencies_s) * 1000
    assert summary["mean_latency_ms"] == pytest.approx(1200.0)
    assert summary["median_latency_ms"] == pytest.approx(1150.0)
    assert summary["p90_latency_ms"] == pytest.approx(float(np.percentile(samples_ms, 90))) == pytest.approx(1410.0)
    assert summary["p99_latency_ms"] == pytest.approx(1491.0)
    assert summary["mean_ttft_ms"] == pytest.approx(statistics.fmean(first_s) * 1000)
    assert summary["tpot_ms"] == pytest.approx(107.0)
    assert summary["batch_size"] == 2 and summary["latencies_s"] == list(latencies_s)


def test_one_output_token_has_no_tpot() -> None:
    settings = LatencySettings(output_len=1, num_iters=1)
    result = LatencyResult(settings=settings, latencies_s=(0.2,), first_token_latencies_s=(0.2,))
    assert result.tpot_s is None and result.decode_tokens_per_s is None
    assert result.as_dict()["tpot_ms"] is None


@pytest.mark.parametrize(("changes", "message"), [
    ({"input_len": 0}, "--input-len must be at least 1"),
    ({"batch_size": 0}, "--batch-size must be at least 1"),
    ({"num_iters": 0}, "--num-iters must be at least 1"),
    ({"num_iters_warmup": -1}, "--num-iters-warmup must be at least 0"),
])
def test_settings_name_the_flag_to_fix(changes: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LatencySettings(**changes)
