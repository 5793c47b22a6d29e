"""An `AsyncEngine` over an in-process engine (for tests): the core steps in one worker thread.

Every call into the core (add, abort, step) runs on the same single-thread executor, so the
core is never touched from two threads, and the event loop stays free while a step runs.
`fail_next_with` and `kill` inject the failures the server must answer (queue full, engine
death) without a real engine-core process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import AsyncIterator
from typing import Any

from tenon.engine.core import EngineStats
from tenon.engine.request import Request
from tenon.engine.scheduler_output import EngineCoreOutput
from tenon.sampling.params import SamplingParams
from tenon.server.engine_interface import EngineDeadError, ModelInfo
from tenon.startup.engine_builder import Engine


class InProcessAsyncEngine:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.tokenizer = engine.tokenizer
        model = engine.config.model
        self.model_info = ModelInfo(
            served_model_name=model.served_model_name, max_model_len=model.max_model_len,
            vocab_size=int(engine.hf_config.vocab_size), eos_token_id=engine.eos_token_id,
            model_path=model.model)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self._queues: dict[str, asyncio.Queue[EngineCoreOutput | Exception]] = {}
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._dead = False
        # The next generate() raises this instead of adding its request (then it is cleared).
        self.fail_next_with: Exception | None = None
        # Sleep per step, so a test can act while a request is surely still running.
        self.step_delay_s = 0.0

    @property
    def core(self) -> Any:
        return self.engine.client.core

    def _ensure_loop(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
            self._loop_task = asyncio.get_running_loop().create_task(self._step_loop())
        return self._wake

    async def _call(self, function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def _step_loop(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            # Cleared before the step, so a request added during the step keeps it set.
            self._wake.clear()
            outputs, has_work = await self._call(self._step)
            for output in outputs:
                queue = self._queues.get(output.request_id)
                if queue is not None:
                    queue.put_nowait(output)
            if has_work:
                self._wake.set()

    def _step(self) -> tuple[list[EngineCoreOutput], bool]:
        if self.step_delay_s:
            time.sleep(self.step_delay_s)
        outputs = self.core.step() if self.core.has_work() else []
        return outputs, self.core.has_work()

    async def generate(self, request_id: str, prompt_token_ids: list[int],
                       sampling_params: SamplingParams) -> AsyncIterator[EngineCoreOutput]:
        if self._dead:
            raise EngineDeadError("the in-process test engine was killed")
        if self.fail_next_with is not None:
            error, self.fail_next_with = self.fail_next_with, None
            raise error
        wake = self._ensure_loop()
        queue: asyncio.Queue[EngineCoreOutput | Exception] = asyncio.Queue()
        self._queues[request_id] = queue
        finished = False
        try:
            request = Request(request_id, prompt_token_ids, sampling_params,
                              eos_token_id=self.model_info.eos_token_id)
            await self._call(self.core.add_request, request)
            wake.set()
            while True:
                item = await queue.get()
                if isinstance(item, Exception):
                    finished = True
                    raise item
                finished = item.is_finished
                yield item
                if finished:
                    return
        finally:
            self._queues.pop(request_id, None)
            if not finished:
                # No await here: this runs while the caller is being cancelled.
                self._executor.submit(self.core.abort_requests, [request_id])
                wake.set()

    async def abort(self, request_ids: list[str]) -> None:
        await self._call(self.core.abort_requests, list(request_ids))
        self._ensure_loop().set()

    def is_healthy(self) -> bool:
        return not self._dead

    async def stats(self) -> EngineStats:
        stats: EngineStats = await self._call(self.core.stats)
        return stats

    def kill(self) -> None:
        """Act as if the engine-core process died: in-flight requests fail, new ones too."""
        self._dead = True
        for queue in self._queues.values():
            queue.put_nowait(EngineDeadError("the in-process test engine was killed"))
        self._executor.submit(self.core.abort_requests, list(self._queues))

    def revive(self) -> None:
        """Undo `kill` (the core itself was never harmed), for the next test."""
        self._dead = False

    async def shutdown(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
        self._executor.shutdown(wait=True)
        self.engine.client.shutdown()
