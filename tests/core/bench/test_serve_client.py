"""One streamed request against the fake server: what is timed, counted and reported."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import aiohttp
import numpy as np
import pytest

from tenon.bench.serve_client import (
    CompletionRequest,
    RequestResult,
    RequestSettings,
    completion_payload,
    fetch_model_ids,
    send_completion_request,
    sse_data,
)
from tenon.bench.serve_metrics import compute_metrics
from tests.core.bench.fake_openai_server import (
    FAKE_MODEL_ID,
    TOKEN_TEXT,
    FakeServer,
    FakeServerConfig,
)

# Sleeps never end early; on a busy 2-core machine they may end much later. A single gap seen by
# the client can be shorter than the server's delay (the chunk before it arrived late), so lower
# bounds hold only for times since the request was sent.
EARLY_TOLERANCE_S = 0.003
LATE_TOLERANCE_S = 0.5


def assert_chunk_times(result: RequestResult, config: FakeServerConfig, tokens_per_chunk: int) -> None:
    """The k-th chunk cannot arrive before first_delay + k * chunk_delay after sending."""
    assert result.ttft_s is not None
    assert config.first_delay_s - EARLY_TOLERANCE_S <= result.ttft_s <= config.first_delay_s + LATE_TOLERANCE_S
    chunk_gaps_s = [sum(result.itl_s[i:i + tokens_per_chunk])
                    for i in range(0, len(result.itl_s), tokens_per_chunk)]
    for index, elapsed_s in enumerate(np.cumsum(chunk_gaps_s) + result.ttft_s):
        assert elapsed_s >= config.first_delay_s + (index + 1) * config.chunk_delay_s - EARLY_TOLERANCE_S
    for gap_s in chunk_gaps_s:
        assert 0 < gap_s <= config.chunk_delay_s + LATE_TOLERANCE_S


def send_one(server: FakeServer, prompt: str, max_tokens: int, **settings_kwargs: object) -> RequestResult:
    settings = RequestSettings(api_url=f"{server.base_url}/v1/completions", model=FAKE_MODEL_ID,
                               **settings_kwargs)  # type: ignore[arg-type]

    async def go() -> RequestResult:
        async with aiohttp.ClientSession() as session:
            return await send_completion_request(
                session, CompletionRequest(prompt=prompt, prompt_tokens=7, max_tokens=max_tokens), settings)

    return asyncio.run(go())


def test_payload_fields() -> None:
    request = CompletionRequest(prompt="hi", prompt_tokens=1, max_tokens=9)
    plain = completion_payload(request, RequestSettings(api_url="u", model="m"))
    assert plain == {"model": "m", "prompt": "hi", "max_tokens": 9, "temperature": 0.0, "stream": True,
                     "stream_options": {"include_usage": True}}
    extra = completion_payload(request, RequestSettings(api_url="u", model="m", ignore_eos=True,
                                                        continuous_usage_stats=True))
    assert extra["ignore_eos"] is True
    assert extra["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}


def test_sse_data_lines() -> None:
    assert sse_data(b'data: {"a": 1}\n') == '{"a": 1}'
    assert sse_data(b"data:[DONE]\r\n") == "[DONE]"
    assert sse_data(b"\n") is None
    assert sse_data(b": keep-alive\n") is None
    assert sse_data(b"event: message\n") is None


def test_one_token_per_chunk_timing(start_fake_server: Callable[[FakeServerConfig], FakeServer]) -> None:
    config = FakeServerConfig(first_delay_s=0.05, chunk_delay_s=0.03)
    server = start_fake_server(config)
    result = send_one(server, "hello there", max_tokens=5, ignore_eos=True)

    assert result.success and result.error is None
    assert server.request_bodies[0]["ignore_eos"] is True
    assert server.request_bodies[0]["max_tokens"] == 5
    assert result.generated_text == TOKEN_TEXT * 5
    assert result.num_text_chunks == 5
    assert result.output_tokens == 5
    assert result.server_prompt_tokens == 2
    assert result.prompt_tokens == 7
    # The empty-text chunk sent at once does not count as the first token.
    assert result.ttft_s is not None and result.latency_s is not None
    assert len(result.itl_s) == 4
    assert_chunk_times(result, config, tokens_per_chunk=1)
    assert math.isclose(result.latency_s, result.ttft_s + sum(result.itl_s), rel_tol=1e-9)

    metrics = compute_metrics([result], duration_s=1.0)
    assert metrics.tpot is not None
    assert math.isclose(metrics.tpot.mean_ms, (result.latency_s - result.ttft_s) / 4 * 1000, rel_tol=1e-9)
    assert 0 < metrics.tpot.mean_ms <= (config.chunk_delay_s + LATE_TOLERANCE_S) * 1000


def test_multi_token_chunks_split_their_gap(
    start_fake_server: Callable[[FakeServerConfig], FakeServer],
) -> None:
    config = FakeServerConfig(first_delay_s=0.02, chunk_delay_s=0.045, tokens_per_chunk=3)
    server = start_fake_server(config)
    result = send_one(server, "x", max_tokens=9, continuous_usage_stats=True)

    assert server.request_bodies[0]["stream_options"]["continuous_usage_stats"] is True
    assert "ignore_eos" not in server.request_bodies[0]
    assert result.success and result.output_tokens == 9 and result.num_text_chunks == 3
    # Chunks 2 and 3 brought 3 tokens each: each gap becomes three equal ITLs.
    assert len(result.itl_s) == 6
    assert result.itl_s[0] == result.itl_s[1] == result.itl_s[2]
    assert result.itl_s[3] == result.itl_s[4] == result.itl_s[5]
    assert_chunk_times(result, config, tokens_per_chunk=3)
    assert result.latency_s is not None and result.ttft_s is not None
    assert math.isclose(result.latency_s, result.ttft_s + sum(result.itl_s), rel_tol=1e-9)


def test_multi_token_chunks_without_per_chunk_usage(
    start_fake_server: Callable[[FakeServerConfig], FakeServer],
) -> None:
    server = start_fake_server(FakeServerConfig(first_delay_s=0.02, chunk_delay_s=0.02, tokens_per_chunk=3))
    result = send_one(server, "x", max_tokens=8)
    # 3 + 3 + 2 tokens; one ITL per chunk gap (vLLM), the token count from the final usage.
    assert result.success and result.num_text_chunks == 3 and len(result.itl_s) == 2
    assert result.output_tokens == 8
    assert result.latency_s is not None and result.ttft_s is not None
    metrics = compute_metrics([result], duration_s=1.0)
    assert metrics.tpot is not None
    assert math.isclose(metrics.tpot.mean_ms, (result.latency_s - result.ttft_s) / 7 * 1000, rel_tol=1e-9)


def test_missing_usage_falls_back_to_counting(
    start_fake_server: Callable[[FakeServerConfig], FakeServer],
) -> None:
    server = start_fake_server(FakeServerConfig(first_delay_s=0.01, chunk_delay_s=0.01, tokens_per_chunk=2,
                                                send_final_usage=False))
    result = send_one(server, "x", max_tokens=6)
    assert result.success and result.output_tokens is None and result.num_text_chunks == 3
    by_chunks = compute_metrics([result], duration_s=2.0)
    assert by_chunks.total_output_tokens == 3
    by_tokenizer = compute_metrics([result], duration_s=2.0, count_tokens=lambda text: len(text.split()))
    assert by_tokenizer.total_output_tokens == 6
    assert by_tokenizer.output_tokens_per_s == 3.0


def test_http_error_is_reported(start_fake_server: Callable[[FakeServerConfig], FakeServer]) -> None:
    server = start_fake_server(FakeServerConfig(first_delay_s=0.01))
    result = send_one(server, "bad request please", max_tokens=4)
    assert not result.success
    assert result.error is not None
    assert result.error.startswith("HTTP 400")
    assert "fake bad request" in result.error
    assert result.ttft_s is None and result.latency_s is None


def test_dropped_connection_is_reported(start_fake_server: Callable[[FakeServerConfig], FakeServer]) -> None:
    server = start_fake_server(FakeServerConfig(first_delay_s=0.01, chunk_delay_s=0.01))
    result = send_one(server, "drop me", max_tokens=6)
    assert not result.success
    assert result.error is not None and result.error != ""
    # Two chunks arrived before the cut; the request still counts as failed.
    assert result.num_text_chunks == 2


def test_fetch_model_ids(start_fake_server: Callable[[FakeServerConfig], FakeServer]) -> None:
    server = start_fake_server(FakeServerConfig())

    async def go() -> list[str]:
        async with aiohttp.ClientSession() as session:
            return await fetch_model_ids(session, server.base_url + "/")

    assert asyncio.run(go()) == [FAKE_MODEL_ID]


def test_unreachable_server_is_a_failure_not_a_crash() -> None:
    settings = RequestSettings(api_url="http://127.0.0.1:9/v1/completions", model="m")

    async def go() -> RequestResult:
        async with aiohttp.ClientSession() as session:
            return await send_completion_request(session, CompletionRequest("p", 1, 2), settings)

    result = asyncio.run(go())
    assert not result.success
    assert result.error is not None and "ClientConnectorError" in result.error


@pytest.mark.parametrize("bad_rate", [0.0, -1.0])
def test_bad_rate_rejected(bad_rate: float) -> None:
    from tenon.bench.serve_workload import arrival_offsets_s

    with pytest.raises(ValueError, match="--request-rate"):
        arrival_offsets_s(3, bad_rate, seed=0)
