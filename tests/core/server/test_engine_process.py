"""The engine core in its own process behind `AsyncEngineClient`, with the tiny llama."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from tenon import LLM, SamplingParams
from tenon.engine.core import EngineStats
from tenon.engine.scheduler_output import EngineCoreOutput
from tenon.engine_args import EngineArgs
from tenon.server.async_engine import AsyncEngineClient, EngineStartupError
from tenon.server.engine_interface import EngineDeadError, QueueFullError
from tenon.server.protocol import OutputMessage, Outputs, Stats
from tests.helpers.tiny_model import VOCAB_SIZE

Served = tuple[asyncio.Runner, AsyncEngineClient]
GREEDY = SamplingParams(temperature=0.0, max_tokens=6, ignore_eos=True)


def _prompts(count: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(1, VOCAB_SIZE) for _ in range(rng.randrange(3, 20))] for _ in range(count)]


async def _collect(client: AsyncEngineClient, request_id: str, prompt: list[int],
                   params: SamplingParams, log: list[str] | None = None) -> list[EngineCoreOutput]:
    outputs = []
    async with asyncio.timeout(30):
        async for output in client.generate(request_id, prompt, params):
            outputs.append(output)
            if log is not None:
                log.append(request_id)
    return outputs


def _tokens(outputs: list[EngineCoreOutput]) -> list[int]:
    return [token_id for output in outputs for token_id in output.new_token_ids]


def _cpu_ticks(pid: int) -> int:
    # /proc/<pid>/stat fields 14 and 15 (utime, stime), after the ")" that ends the name.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_greedy_outputs_match_in_process_llm(served_engine: Served,
                                             make_engine_args: Callable[..., EngineArgs]) -> None:
    runner, client = served_engine
    prompts = _prompts(3, seed=0)
    llm = LLM(log_startup=False, **attrs.asdict(make_engine_args()))
    expected = [out.outputs[0].token_ids for out in llm.generate([{"prompt_token_ids": p} for p in prompts], GREEDY)]
    llm.shutdown()

    async def run() -> list[list[EngineCoreOutput]]:
        return list(await asyncio.gather(*(_collect(client, f"g{i}", p, GREEDY) for i, p in enumerate(prompts))))

    results = runner.run(run())
    assert [_tokens(outputs) for outputs in results] == expected
    assert len({tuple(tokens) for tokens in expected}) == len(prompts)  # not a degenerate model
    for outputs in results:
        assert [o.finish_reason for o in outputs] == [None] * 5 + ["length"]


def test_concurrent_requests_interleave_and_finish(served_engine: Served) -> None:
    runner, client = served_engine
    prompts = _prompts(4, seed=1)
    max_tokens = [3, 9, 5, 7]
    arrival_log: list[str] = []

    async def run() -> list[list[EngineCoreOutput]]:
        return list(await asyncio.gather(*(
            _collect(client, f"c{i}", prompt, SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True),
                     arrival_log)
            for i, (prompt, n) in enumerate(zip(prompts, max_tokens, strict=True))
        )))

    results = runner.run(run())
    assert [len(_tokens(outputs)) for outputs in results] == max_tokens
    assert [outputs[-1].finish_reason for outputs in results] == ["length"] * 4
    # Interleaved: the longest request's outputs are not one contiguous run.
    positions = [index for index, request_id in enumerate(arrival_log) if request_id == "c1"]
    assert positions[-1] - positions[0] + 1 > len(positions)


def test_over_long_prompt_is_refused_while_another_request_completes(served_engine: Served) -> None:
    runner, client = served_engine
    max_model_len = client.model_info.max_model_len
    assert max_model_len == 256

    async def run() -> list[EngineCoreOutput]:
        params = SamplingParams(temperature=0.0, max_tokens=12, ignore_eos=True)
        running = asyncio.create_task(_collect(client, "ok", [5, 6, 7], params))
        with pytest.raises(ValueError, match=r"prompt has 300 tokens but --max-model-len is 256"):
            await _collect(client, "too-long", [9] * 300, params)
        return await running

    outputs = runner.run(run())
    assert len(_tokens(outputs)) == 12 and outputs[-1].finish_reason == "length"
    assert client.is_healthy()


def _idle_snapshot_after(messages: list[OutputMessage], request_id: str) -> tuple[int, Stats] | None:
    """The first Stats showing nothing running after `request_id`'s first output, with its index."""
    started = False
    for index, message in enumerate(messages):
        if isinstance(message, Outputs) and any(o.request_id == request_id for o in message.outputs):
            started = True
        elif started and isinstance(message, Stats) and message.num_requests_running == 0:
            return index, message
    return None


def test_closing_the_iterator_aborts_and_frees_every_block(served_engine: Served,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    runner, client = served_engine
    # Record the core's messages in arrival order: a stats snapshot read with stats() alone
    # could predate the request.
    received: list[OutputMessage] = []
    dispatch = client._dispatch

    def record(message: OutputMessage) -> None:
        received.append(message)
        dispatch(message)

    monkeypatch.setattr(client, "_dispatch", record)
    max_tokens = 240

    async def run() -> None:
        stream = client.generate("aborted", [11, 12, 13, 14, 15], SamplingParams(max_tokens=max_tokens, ignore_eos=True))
        assert [(await anext(stream)).finish_reason for _ in range(2)] == [None, None]
        await stream.aclose()  # a client disconnect
        async with asyncio.timeout(10):
            while (idle := _idle_snapshot_after(received, "aborted")) is None:
                await asyncio.sleep(0.02)
        index, stats = idle
        num_tokens = sum(len(o.new_token_ids) for m in received[:index] if isinstance(m, Outputs)
                         for o in m.outputs if o.request_id == "aborted")
        assert 2 <= num_tokens < max_tokens  # stopped by the abort, not by max_tokens
        assert (stats.num_requests_running, stats.num_requests_waiting, stats.kv_cache_usage_perc) == (0, 0, 0.0)
        outputs = await _collect(client, "after-abort", [11, 12], GREEDY)  # the core still serves
        assert len(_tokens(outputs)) == 6

    runner.run(run())


def test_idle_engine_process_uses_no_cpu(served_engine: Served) -> None:
    runner, client = served_engine
    pid = client.process_id
    assert pid is not None
    runner.run(asyncio.sleep(0.3))  # let the last step's stats go out
    ticks_before = _cpu_ticks(pid)
    time.sleep(1.0)
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    assert (_cpu_ticks(pid) - ticks_before) / ticks_per_s <= 0.02  # a spinning loop would use ~1.0


def test_queue_full_then_killed_core_fails_requests_promptly(make_engine_args: Callable[..., EngineArgs]) -> None:
    async def run() -> None:
        # One sequence at a time and one waiting: "a" runs, "b" waits, "c" is refused.
        client = await AsyncEngineClient.start(make_engine_args(max_num_seqs=1), max_waiting_requests=1)
        try:
            params = SamplingParams(max_tokens=200, ignore_eos=True)
            stream_a = client.generate("a", [3, 4, 5], params)
            await anext(stream_a)
            task_b = asyncio.create_task(_collect(client, "b", [6, 7], params))
            await asyncio.sleep(0)  # "b" is sent before "c"
            with pytest.raises(QueueFullError, match=r"waiting queue is full \(1 of 1 requests waiting\)"):
                await _collect(client, "c", [8, 9], params)
            assert client.is_healthy()

            pid = client.process_id
            assert pid is not None
            killed_at_s = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            with pytest.raises(EngineDeadError, match=r"engine core process died \(exit code -9\)"):
                async with asyncio.timeout(5):
                    async for _ in stream_a:
                        pass
            with pytest.raises(EngineDeadError):
                await task_b
            assert time.monotonic() - killed_at_s < 2.0
            assert not client.is_healthy()
            new_request_at_s = time.monotonic()
            with pytest.raises(EngineDeadError, match="exit code -9"):
                await anext(client.generate("d", [1, 2], params))
            assert time.monotonic() - new_request_at_s < 0.1
        finally:
            await client.shutdown()

    asyncio.run(run())


def test_startup_failure_raises_the_core_message(make_engine_args: Callable[..., EngineArgs]) -> None:
    with pytest.raises(EngineStartupError, match=r"model '/nonexistent/model' not found"):
        asyncio.run(AsyncEngineClient.start(make_engine_args(model="/nonexistent/model"), startup_timeout_s=120))


def test_engine_process_with_asynchronous_scheduling(make_engine_args: Callable[..., EngineArgs]) -> None:
    """The engine-core loop steps while a launched step is in flight, and goes idle once it is
    processed: same tokens as the in-process engine, an abort mid-stream, nothing left running."""
    prompts = _prompts(4, seed=9)
    args = make_engine_args(async_scheduling=True)
    llm = LLM(log_startup=False, **attrs.asdict(make_engine_args()))
    expected = [out.outputs[0].token_ids for out in llm.generate([{"prompt_token_ids": p} for p in prompts], GREEDY)]
    llm.shutdown()
    with asyncio.Runner() as runner:
        client = runner.run(AsyncEngineClient.start(args))
        try:
            async def run() -> list[list[EngineCoreOutput]]:
                long_params = SamplingParams(temperature=0.0, max_tokens=200, ignore_eos=True)
                aborted = asyncio.create_task(_collect(client, "long", prompts[0], long_params))
                results = await asyncio.gather(*(_collect(client, f"a{i}", p, GREEDY) for i, p in enumerate(prompts)))
                aborted.cancel()  # the stream's consumer goes away: the request is aborted
                with pytest.raises(asyncio.CancelledError):
                    await aborted
                return list(results)

            results = runner.run(run())
            assert [_tokens(outputs) for outputs in results] == expected

            async def idle_stats() -> EngineStats:
                async with asyncio.timeout(10):
                    while True:
                        stats = await client.stats()
                        if stats.num_requests_running == 0 and stats.num_requests_waiting == 0 \
                                and stats.kv_cache_usage_perc == 0.0:
                            return stats
                        await asyncio.sleep(0.05)

            stats = runner.run(idle_stats())
            assert stats.kv_cache_usage_perc == 0.0
        finally:
            runner.run(client.shutdown())
