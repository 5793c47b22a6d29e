"""Random prompts, arrival times, and the request loop against the fake server."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tenon.bench.serve_client import CompletionRequest, RequestSettings
from tenon.bench.serve_metrics import compute_metrics
from tenon.bench.serve_workload import (
    BenchmarkRun,
    allowed_token_ids,
    arrival_offsets_s,
    random_prompts,
    run_benchmark,
)
from tests.core.bench.fake_openai_server import FAKE_MODEL_ID, FakeServer, FakeServerConfig


@pytest.mark.parametrize("input_len_tokens", [1, 2, 5, 33, 256])
def test_prompts_have_exactly_the_requested_tokens(tiny_tokenizer: Any, input_len_tokens: int) -> None:
    prompts = random_prompts(tiny_tokenizer, num_prompts=12, input_len_tokens=input_len_tokens, seed=3)
    special_ids = set(tiny_tokenizer.all_special_ids)
    for prompt in prompts:
        token_ids = tiny_tokenizer.encode(prompt.text, add_special_tokens=False)
        assert len(token_ids) == input_len_tokens == prompt.num_tokens
        assert tuple(token_ids) == prompt.token_ids
        assert not special_ids & set(token_ids)
    assert len({prompt.text for prompt in prompts}) == len(prompts)


def test_prompts_reproducible_for_a_seed(tiny_tokenizer: Any) -> None:
    first = random_prompts(tiny_tokenizer, num_prompts=4, input_len_tokens=20, seed=7)
    again = random_prompts(tiny_tokenizer, num_prompts=4, input_len_tokens=20, seed=7)
    other = random_prompts(tiny_tokenizer, num_prompts=4, input_len_tokens=20, seed=8)
    assert first == again
    assert [prompt.text for prompt in first] != [prompt.text for prompt in other]


def test_allowed_ids_exclude_special_tokens(tiny_tokenizer: Any) -> None:
    allowed_ids = allowed_token_ids(tiny_tokenizer)
    assert allowed_ids.tolist() == list(range(3, tiny_tokenizer.vocab_size))


def test_prompt_length_must_be_positive(tiny_tokenizer: Any) -> None:
    with pytest.raises(ValueError, match="--random-input-len"):
        random_prompts(tiny_tokenizer, num_prompts=1, input_len_tokens=0, seed=0)


def test_arrivals_reproducible_and_poisson() -> None:
    rate_per_s = 4.0
    offsets_s = arrival_offsets_s(20_001, rate_per_s, seed=11)
    assert offsets_s == arrival_offsets_s(20_001, rate_per_s, seed=11)
    assert offsets_s != arrival_offsets_s(20_001, rate_per_s, seed=12)
    assert offsets_s[0] == 0.0
    gaps_s = np.diff(offsets_s)
    assert (gaps_s >= 0).all()
    # 20,000 exponential gaps: the mean's standard error is 0.7%, so 4% bounds cannot flake.
    assert gaps_s.mean() == pytest.approx(1 / rate_per_s, rel=0.04)
    assert gaps_s.std() / gaps_s.mean() == pytest.approx(1.0, rel=0.05)


def test_arrivals_burstiness_keeps_the_mean() -> None:
    gaps_s = np.diff(arrival_offsets_s(20_001, 10.0, seed=5, burstiness=4.0))
    assert gaps_s.mean() == pytest.approx(0.1, rel=0.04)
    # Gamma with shape 4: coefficient of variation 1/2.
    assert gaps_s.std() / gaps_s.mean() == pytest.approx(0.5, rel=0.05)


def test_infinite_rate_sends_everything_at_once() -> None:
    assert arrival_offsets_s(5, math.inf, seed=0) == [0.0] * 5
    assert arrival_offsets_s(0, 1.0, seed=0) == []
    with pytest.raises(ValueError, match="--burstiness"):
        arrival_offsets_s(3, 1.0, seed=0, burstiness=0.0)


def run(server: FakeServer, prompts: list[str], offsets_s: list[float], max_concurrency: int | None,
        max_tokens: int = 3, num_warmups: int = 0) -> BenchmarkRun:
    settings = RequestSettings(api_url=f"{server.base_url}/v1/completions", model=FAKE_MODEL_ID)
    requests = [CompletionRequest(prompt=prompt, prompt_tokens=5, max_tokens=max_tokens) for prompt in prompts]
    return asyncio.run(run_benchmark(requests, settings, arrival_offsets_s=offsets_s,
                                     max_concurrency=max_concurrency, num_warmups=num_warmups,
                                     show_progress=False))


def test_max_concurrency_is_respected(start_fake_server: Callable[[FakeServerConfig], FakeServer]) -> None:
    server = start_fake_server(FakeServerConfig(first_delay_s=0.05, chunk_delay_s=0.02))
    result = run(server, [f"p{index}" for index in range(10)], [0.0] * 10, max_concurrency=3)
    assert server.peak_active == 3
    assert len(result.results) == 10 and all(r.success for r in result.results)
    assert sorted(body["prompt"] for body in server.request_bodies) == sorted(f"p{i}" for i in range(10))


def test_no_limit_sends_all_at_once(start_fake_server: Callable[[FakeServerConfig], FakeServer]) -> None:
    server = start_fake_server(FakeServerConfig(first_delay_s=0.2, chunk_delay_s=0.02))
    run(server, [f"p{index}" for index in range(8)], [0.0] * 8, max_concurrency=None)
    assert server.peak_active == 8


def test_arrival_offsets_are_followed(start_fake_server: Callable[[FakeServerConfig], FakeServer]) -> None:
    server = start_fake_server(FakeServerConfig(first_delay_s=0.01, chunk_delay_s=0.01))
    offsets_s = [0.0, 0.1, 0.25]
    before_s = time.perf_counter()
    result = run(server, ["a", "b", "c"], offsets_s, max_concurrency=None)
    assert [body["prompt"] for body in server.request_bodies] == ["a", "b", "c"]
    for arrival_s, offset_s in zip(server.arrival_times_s, offsets_s, strict=True):
        assert before_s + offset_s - 0.003 <= arrival_s <= before_s + offset_s + 0.5
    assert result.duration_s >= 0.25
    assert len(result.results) == 3


def test_warmups_are_sent_first_and_not_reported(
    start_fake_server: Callable[[FakeServerConfig], FakeServer],
) -> None:
    server = start_fake_server(FakeServerConfig(first_delay_s=0.01, chunk_delay_s=0.01))
    result = run(server, ["a", "b"], [0.0, 0.0], max_concurrency=1, num_warmups=2)
    assert [body["prompt"] for body in server.request_bodies] == ["a", "a", "a", "b"]
    assert len(result.results) == 2 and all(r.success for r in result.results)


def test_failures_are_counted_and_reported(
    start_fake_server: Callable[[FakeServerConfig], FakeServer],
) -> None:
    server = start_fake_server(FakeServerConfig(first_delay_s=0.01, chunk_delay_s=0.01))
    prompts = ["ok 1", "bad 1", "ok 2", "drop 1", "bad 2", "ok 3"]
    result = run(server, prompts, [0.0] * 6, max_concurrency=2, max_tokens=4)
    assert [r.success for r in result.results] == [True, False, True, False, False, True]
    metrics = compute_metrics(result.results, result.duration_s)
    assert metrics.num_completed == 3 and metrics.num_failed == 3
    assert metrics.total_output_tokens == 12
    assert metrics.total_input_tokens == 15
    assert len(metrics.errors) == 2
    assert metrics.errors[0].startswith("HTTP 400")
    assert "fake bad request" in metrics.errors[0]
    assert not metrics.errors[1].startswith("HTTP")


def test_mismatched_arrivals_rejected() -> None:
    settings = RequestSettings(api_url="http://127.0.0.1:9/v1/completions", model="m")
    with pytest.raises(ValueError, match="arrival times"):
        asyncio.run(run_benchmark([CompletionRequest("p", 1, 1)], settings, arrival_offsets_s=[],
                                  max_concurrency=None))
