"""Client disconnects abort their requests; a dead engine is reported, never waited on."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tenon.engine.core import EngineStats
from tenon.server.async_engine import AsyncEngineClient
from tests.core.server.inprocess_engine import InProcessAsyncEngine
from tests.core.server.live_server import LiveServer, serve_in_thread
from tests.core.server.server_fixtures import SERVED_NAME, tiny_engine_args

# With this delay per step a 100-token request runs for 3 s unless it is aborted.
STEP_DELAY_S = 0.03
LONG_REQUEST: dict[str, Any] = {"model": SERVED_NAME, "prompt": "hello", "max_tokens": 100,
                                "ignore_eos": True, "temperature": 0.0}


def _wait_until_idle(server: LiveServer, engine: InProcessAsyncEngine, within_s: float) -> EngineStats:
    deadline_s = time.monotonic() + within_s
    while True:
        stats: EngineStats = server.call(engine.stats())
        if stats.num_requests_running == 0 and stats.num_requests_waiting == 0:
            return stats
        assert time.monotonic() < deadline_s, f"the request was not aborted: {stats}"
        time.sleep(0.02)


def _num_running(server: LiveServer, engine: InProcessAsyncEngine) -> int:
    stats: EngineStats = server.call(engine.stats())
    return stats.num_requests_running


def _assert_every_block_free(engine: InProcessAsyncEngine) -> None:
    pool = engine.core.scheduler.kv_cache_manager.block_pool
    assert all(block.ref_count == 0 for block in pool.blocks)
    assert not engine.core.scheduler.requests


def test_disconnect_mid_stream_aborts_the_request(fault_server: LiveServer,
                                                  fault_engine: InProcessAsyncEngine) -> None:
    fault_engine.step_delay_s = STEP_DELAY_S
    started_s = time.monotonic()
    with httpx.stream("POST", f"{fault_server.base_url}/v1/completions", timeout=60,
                      json={**LONG_REQUEST, "stream": True}) as response:
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        assert '"text"' in first
        assert _num_running(fault_server, fault_engine) == 1
    stats = _wait_until_idle(fault_server, fault_engine, within_s=1.5)
    assert time.monotonic() - started_s < 100 * STEP_DELAY_S
    assert stats.kv_cache_usage_perc == 0.0
    _assert_every_block_free(fault_engine)


def test_disconnect_while_waiting_for_a_body_aborts_the_request(
        fault_server: LiveServer, fault_engine: InProcessAsyncEngine) -> None:
    fault_engine.step_delay_s = STEP_DELAY_S
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{fault_server.base_url}/v1/chat/completions", timeout=0.5,
                   json={"model": SERVED_NAME, "messages": [{"role": "user", "content": "hi"}],
                         "max_tokens": 100, "ignore_eos": True})
    _wait_until_idle(fault_server, fault_engine, within_s=1.5)
    _assert_every_block_free(fault_engine)


def test_engine_death_mid_stream_and_after(fault_server: LiveServer,
                                           fault_engine: InProcessAsyncEngine) -> None:
    fault_engine.step_delay_s = STEP_DELAY_S
    client = openai.OpenAI(base_url=f"{fault_server.base_url}/v1", api_key="none", max_retries=0)
    chunks = iter(client.completions.create(
        model=SERVED_NAME, prompt="hello", max_tokens=100, stream=True,
        extra_body={"ignore_eos": True}))
    next(chunks)
    fault_server.loop.call_soon_threadsafe(fault_engine.kill)
    with pytest.raises(openai.APIError, match="the engine core process died"):
        for _ in chunks:
            pass
    health = httpx.get(f"{fault_server.base_url}/health", timeout=60)
    assert health.status_code == 503
    assert health.json()["error"]["type"] == "EngineDeadError"
    with pytest.raises(openai.InternalServerError, match="engine core process died") as raised:
        client.chat.completions.create(model=SERVED_NAME, max_tokens=3,
                                       messages=[{"role": "user", "content": "hi"}])
    assert raised.value.status_code == 503


def test_engine_death_during_a_non_streaming_request_is_503(
        fault_server: LiveServer, fault_engine: InProcessAsyncEngine) -> None:
    fault_engine.step_delay_s = STEP_DELAY_S
    result: dict[str, httpx.Response] = {}
    thread = threading.Thread(target=lambda: result.update(response=httpx.post(
        f"{fault_server.base_url}/v1/completions", json=LONG_REQUEST, timeout=60)))
    thread.start()
    deadline_s = time.monotonic() + 5
    while _num_running(fault_server, fault_engine) == 0:
        assert time.monotonic() < deadline_s
        time.sleep(0.01)
    fault_server.loop.call_soon_threadsafe(fault_engine.kill)
    thread.join(timeout=10)
    response = result["response"]
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["type"] == "EngineDeadError" and "engine core process died" in error["message"]


def test_killed_engine_process_fails_the_stream_and_health(server_model_dir: Path) -> None:
    """The real thing: SIGKILL the engine-core process in the middle of a stream."""
    async def make_engine() -> AsyncEngineClient:
        return await AsyncEngineClient.start(tiny_engine_args(server_model_dir))

    with serve_in_thread(make_engine) as live:
        client = openai.OpenAI(base_url=f"{live.base_url}/v1", api_key="none", max_retries=0)
        chunks = iter(client.chat.completions.create(
            model=SERVED_NAME, messages=[{"role": "user", "content": "hi"}], max_tokens=100,
            stream=True, extra_body={"ignore_eos": True}))
        next(chunks)
        os.kill(live.engine.process_id, signal.SIGKILL)
        killed_at_s = time.monotonic()
        with pytest.raises(openai.APIError, match=r"engine core process died \(exit code -9\)"):
            for _ in chunks:
                pass
        assert time.monotonic() - killed_at_s < 2.0
        assert httpx.get(f"{live.base_url}/health", timeout=60).status_code == 503
        metrics = httpx.get(f"{live.base_url}/metrics", timeout=60)
        assert metrics.status_code == 200 and "vllm:num_requests_running" in metrics.text
