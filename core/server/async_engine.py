"""`AsyncEngineClient`: the `AsyncEngine` the HTTP frontend uses, with the engine core in a
child process ("spawn", so the child may use CUDA) talking over ZeroMQ.

    frontend process (event loop)                              engine-core process
      generate() --AddRequest/Abort--> PUSH ipc://.../input --> PULL  EngineCoreLoop
      reader task <-- PULL ipc://.../output <-- PUSH <-- Outputs, RequestRejected, Stats
      watchdog: the child's sentinel fd on the event loop (readable when the child exits)

Each request has an asyncio.Queue; the reader task routes outputs (and rejections, as
exceptions) to it. When the child dies, every queue gets EngineDeadError at once and new
requests fail immediately, so the frontend never waits on a dead core.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, TypeAlias

import attrs
import zmq
import zmq.asyncio

from tenon.engine.core import EngineStats
from tenon.engine.scheduler_output import EngineCoreOutput
from tenon.engine_args import EngineArgs
from tenon.sampling.params import SamplingParams
from tenon.server.engine_interface import EngineDeadError, ModelInfo, QueueFullError
from tenon.server.engine_process import DEFAULT_MAX_WAITING_REQUESTS, run_engine_core
from tenon.server.protocol import (
    Abort,
    AddRequest,
    InputMessage,
    OutputMessage,
    Outputs,
    Ready,
    RequestRejected,
    Shutdown,
    StartupFailed,
    Stats,
    decode_output,
    encode,
    engine_output_from_struct,
    model_info_from_struct,
    sampling_params_to_struct,
    stats_from_struct,
)

DEFAULT_STARTUP_TIMEOUT_S = 1800.0  # a first start may convert a large checkpoint
DEFAULT_SHUTDOWN_TIMEOUT_S = 10.0
_STARTUP_POLL_MS = 200

_QueueItem: TypeAlias = EngineCoreOutput | BaseException


class EngineStartupError(RuntimeError):
    """The engine core did not start; the message is the core's own error."""


def _log(line: str) -> None:
    print(f"tenon: {line}", file=sys.stderr, flush=True)


@attrs.define
class _Channel:
    """The child process, the sockets and the ipc folder; `close` releases all of them."""

    process: BaseProcess
    context: zmq.asyncio.Context
    input_socket: zmq.asyncio.Socket
    output_socket: zmq.asyncio.Socket
    ipc_dir: Path

    async def stop_process(self, timeout_s: float) -> None:
        await asyncio.to_thread(self.process.join, timeout_s)
        if self.process.is_alive():
            self.process.terminate()
            await asyncio.to_thread(self.process.join, timeout_s)
        if self.process.is_alive():
            self.process.kill()
            await asyncio.to_thread(self.process.join)

    def close_sockets(self) -> None:
        self.input_socket.close(linger=0)
        self.output_socket.close(linger=0)
        self.context.term()
        shutil.rmtree(self.ipc_dir, ignore_errors=True)


def _open_channel(engine_args: EngineArgs, max_waiting_requests: int) -> _Channel:
    ipc_dir = Path(tempfile.mkdtemp(prefix="tenon-ipc-"))
    input_address = f"ipc://{ipc_dir / 'input'}"
    output_address = f"ipc://{ipc_dir / 'output'}"
    context = zmq.asyncio.Context()
    input_socket = context.socket(zmq.PUSH)
    output_socket = context.socket(zmq.PULL)
    process = multiprocessing.get_context("spawn").Process(
        target=run_engine_core,
        args=(attrs.asdict(engine_args), input_address, output_address),
        kwargs={"max_waiting_requests": max_waiting_requests},
        name="tenon-engine-core",
        daemon=True,
    )
    channel = _Channel(process, context, input_socket, output_socket, ipc_dir)
    try:
        # Unbounded queues: a send never waits, so an abort can go out from a `finally`.
        input_socket.setsockopt(zmq.SNDHWM, 0)
        input_socket.bind(input_address)
        output_socket.setsockopt(zmq.RCVHWM, 0)
        output_socket.bind(output_address)
        process.start()
    except BaseException:
        channel.close_sockets()
        raise
    return channel


async def _wait_for_ready(channel: _Channel, timeout_s: float) -> Ready:
    deadline_s = time.monotonic() + timeout_s
    while True:
        if await channel.output_socket.poll(timeout=_STARTUP_POLL_MS):
            message = decode_output(await channel.output_socket.recv())
            if isinstance(message, Ready):
                return message
            if isinstance(message, StartupFailed):
                raise EngineStartupError(message.message)
            continue
        if not channel.process.is_alive():
            # A message sent just before the exit may still be on its way.
            if await channel.output_socket.poll(timeout=_STARTUP_POLL_MS):
                continue
            raise EngineStartupError(
                f"the engine core process exited with code {channel.process.exitcode} before it "
                "was ready; its log is above"
            )
        if time.monotonic() > deadline_s:
            raise EngineStartupError(
                f"the engine core was not ready within {timeout_s:.0f} s; raise the start-up timeout"
            )


def load_frontend_tokenizer(engine_args: EngineArgs, model_path: str) -> Any | None:
    """The tokenizer the engine loaded, loaded again in this process: `--tokenizer` if given,
    else the model loader's (GGUF tokenizers come from the on-disk cache the core filled)."""
    if engine_args.tokenizer is not None:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(engine_args.tokenizer)
    from tenon import envs
    from tenon.plugin_host import load_plugins
    from tenon.spec.loader import ModelSource
    from tenon.startup.model_source import select_loader

    source = ModelSource(path=Path(model_path))
    loader_cls, _, _ = select_loader(load_plugins(), source, engine_args.load_format)
    return loader_cls(cache_dir=envs.cache_dir()).load_tokenizer(source)


class AsyncEngineClient:
    """`AsyncEngine` over an engine-core process. Make one with `await AsyncEngineClient.start(...)`;
    use it from the event loop it was started on."""

    def __init__(self, channel: _Channel, model_info: ModelInfo, tokenizer: Any | None) -> None:
        self._channel = channel
        self.model_info = model_info
        self.tokenizer = tokenizer
        self._queues: dict[str, asyncio.Queue[_QueueItem]] = {}
        self._stats = EngineStats(
            num_requests_running=0, num_requests_waiting=0, kv_cache_usage_perc=0.0,
            num_preemptions_total=0, prefix_cache_queries_total=0, prefix_cache_hits_total=0,
        )
        self._dead_error: EngineDeadError | None = None
        self._closing = False
        self._loop = asyncio.get_running_loop()
        self._reader_task = self._loop.create_task(self._read_outputs(), name="tenon-engine-outputs")
        self._loop.add_reader(channel.process.sentinel, self._on_process_exit)

    @classmethod
    async def start(
        cls,
        engine_args: EngineArgs,
        *,
        startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
        max_waiting_requests: int = DEFAULT_MAX_WAITING_REQUESTS,
    ) -> AsyncEngineClient:
        """Start the engine-core process and wait until it is ready. Raises EngineStartupError
        with the core's message if it fails to start, exits early or takes too long."""
        channel = _open_channel(engine_args, max_waiting_requests)
        try:
            ready = await _wait_for_ready(channel, startup_timeout_s)
            model_info = model_info_from_struct(ready)
            tokenizer = await asyncio.to_thread(load_frontend_tokenizer, engine_args, model_info.model_path)
        except BaseException:
            channel.process.kill()
            await channel.stop_process(DEFAULT_SHUTDOWN_TIMEOUT_S)
            channel.close_sockets()
            raise
        return cls(channel, model_info, tokenizer)

    @property
    def process_id(self) -> int | None:
        return self._channel.process.pid

    def is_healthy(self) -> bool:
        return self._dead_error is None

    async def stats(self) -> EngineStats:
        return self._stats

    async def generate(
        self, request_id: str, prompt_token_ids: list[int], sampling_params: SamplingParams
    ) -> AsyncIterator[EngineCoreOutput]:
        """Yield the request's outputs until one has `finish_reason`. Raises ValueError (the
        engine refused the request), QueueFullError or EngineDeadError. Closing or cancelling
        the iterator early aborts the request in the engine. Give every request a fresh id:
        outputs of an aborted request may still be on their way under its old id."""
        if self._dead_error is not None:
            raise EngineDeadError(str(self._dead_error))
        if request_id in self._queues:
            raise ValueError(f"request id {request_id!r} is already in use; give each request its own id")
        queue: asyncio.Queue[_QueueItem] = asyncio.Queue()
        self._queues[request_id] = queue
        finished = False
        try:
            self._send(AddRequest(
                request_id=request_id,
                prompt_token_ids=list(prompt_token_ids),
                sampling_params=sampling_params_to_struct(sampling_params),
                eos_token_id=self.model_info.eos_token_id,
                arrival_time_s=time.time(),
            ))
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                finished = item.finish_reason is not None
                yield item
                if finished:
                    return
        finally:
            # abort() may already have taken the queue out (and told the core).
            is_live = self._queues.get(request_id) is queue
            if is_live:
                del self._queues[request_id]
            if is_live and not finished and self._dead_error is None:
                self._send(Abort(request_ids=[request_id]))

    async def abort(self, request_ids: list[str]) -> None:
        """Abort requests in the core; a `generate` still iterating them ends with an
        output whose finish_reason is "abort"."""
        request_ids = list(request_ids)
        for request_id in request_ids:
            queue = self._queues.pop(request_id, None)
            if queue is not None:
                queue.put_nowait(EngineCoreOutput(request_id=request_id, new_token_ids=[], finish_reason="abort"))
        if request_ids and self._dead_error is None:
            self._send(Abort(request_ids=request_ids))

    async def shutdown(self, timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S) -> None:
        """Ask the core to stop, wait for it (terminate it after `timeout_s`), release the
        sockets and the ipc folder. Requests still running fail with EngineDeadError."""
        if self._closing:
            return
        self._closing = True
        if self._dead_error is None:
            self._send(Shutdown())
        await self._channel.stop_process(timeout_s)
        self._fail_all(EngineDeadError("the engine was shut down"))
        self._reader_task.cancel()
        await asyncio.gather(self._reader_task, return_exceptions=True)
        self._loop.remove_reader(self._channel.process.sentinel)
        self._channel.close_sockets()

    def _send(self, message: InputMessage) -> None:
        # With an unbounded send queue the send completes at once (or, before the core has
        # connected, as soon as it does); the returned future needs no awaiting.
        self._channel.input_socket.send(encode(message))

    def _on_process_exit(self) -> None:
        process = self._channel.process
        self._loop.remove_reader(process.sentinel)
        process.join(1.0)  # the sentinel fires as the process exits; reaping it is immediate
        if self._closing:
            self._fail_all(EngineDeadError("the engine was shut down"))
            return
        message = f"engine core process died (exit code {process.exitcode})"
        _log(message)
        self._fail_all(EngineDeadError(message))

    def _fail_all(self, error: EngineDeadError) -> None:
        if self._dead_error is None:
            self._dead_error = error
        for queue in self._queues.values():
            # One instance per waiter: a raised exception collects the raiser's traceback.
            queue.put_nowait(EngineDeadError(str(self._dead_error)))

    async def _read_outputs(self) -> None:
        try:
            while True:
                data = await self._channel.output_socket.recv()
                self._dispatch(decode_output(data))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            _log("lost the engine core's output stream")
            traceback.print_exc(file=sys.stderr)
            self._fail_all(EngineDeadError(f"lost the engine core's output stream: {error}"))

    def _dispatch(self, message: OutputMessage) -> None:
        if isinstance(message, Outputs):
            for struct in message.outputs:
                queue = self._queues.get(struct.request_id)
                if queue is not None:  # else the request was aborted here first
                    queue.put_nowait(engine_output_from_struct(struct))
        elif isinstance(message, Stats):
            self._stats = stats_from_struct(message)
        elif isinstance(message, RequestRejected):
            queue = self._queues.get(message.request_id)
            if queue is not None:
                error_type = QueueFullError if message.kind == "queue_full" else ValueError
                queue.put_nowait(error_type(message.message))

