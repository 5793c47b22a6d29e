"""The engine core in its own process: the child's main and its busy/idle loop.

    loop:
        take every pending input message without blocking (add, abort, shutdown)
        core has work?  yes -> step(); send the step's outputs; send stats every ~0.5 s
                               (and once when the core goes idle)
                        no  -> block on the input socket and the parent's sentinel

The process never spins: when idle it sleeps in `poll` until the frontend sends something or
the frontend process dies (then the core exits instead of living on as an orphan). Any error in
the loop is printed with its traceback and the process exits non-zero; the frontend's watchdog
sees the exit and fails the requests in flight.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
import time
import traceback
from typing import Any

import zmq

from tenon.engine.core import EngineCore
from tenon.engine.request import Request
from tenon.server.engine_interface import ModelInfo
from tenon.server.protocol import (
    Abort,
    AddRequest,
    InputMessage,
    OutputMessage,
    Outputs,
    RequestRejected,
    Shutdown,
    StartupFailed,
    decode_input,
    encode,
    engine_output_to_struct,
    model_info_to_struct,
    sampling_params_from_struct,
    stats_to_struct,
)

DEFAULT_MAX_WAITING_REQUESTS = 1024
DEFAULT_STATS_INTERVAL_S = 0.5
# How long closing the output socket may wait to deliver the last message (StartupFailed).
_LINGER_MS = 5000


def _log(line: str) -> None:
    print(f"tenon: engine core: {line}", file=sys.stderr, flush=True)


def run_engine_core(
    engine_args: dict[str, Any],
    input_address: str,
    output_address: str,
    *,
    max_waiting_requests: int = DEFAULT_MAX_WAITING_REQUESTS,
    stats_interval_s: float = DEFAULT_STATS_INTERVAL_S,
) -> None:
    """Process main (for a "spawn" multiprocessing context). Builds the engine from
    `EngineArgs(**engine_args)`, answers Ready (or StartupFailed, then exits with code 1) and
    serves requests until Shutdown (exit 0) or an error (exit 1)."""
    # Ctrl-C in a terminal reaches the whole process group; the frontend decides when the
    # core stops and tells it with Shutdown.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(_serve(engine_args, input_address, output_address, max_waiting_requests, stats_interval_s))


def _serve(
    engine_args: dict[str, Any],
    input_address: str,
    output_address: str,
    max_waiting_requests: int,
    stats_interval_s: float,
) -> int:
    context = zmq.Context()
    input_socket = context.socket(zmq.PULL)
    input_socket.connect(input_address)
    output_socket = context.socket(zmq.PUSH)
    output_socket.setsockopt(zmq.SNDHWM, 0)  # never drop or block on outputs: the frontend reads
    output_socket.connect(output_address)
    try:
        engine = _build(engine_args, output_socket)
        if engine is None:
            return 1
        loop = EngineCoreLoop(
            engine.client.core, input_socket, output_socket,
            max_waiting_requests=max_waiting_requests, stats_interval_s=stats_interval_s,
        )
        try:
            return loop.run()
        except Exception:
            _log("failed; exiting")
            traceback.print_exc(file=sys.stderr)
            return 1
        finally:
            engine.client.shutdown()
    finally:
        input_socket.close(linger=0)
        output_socket.close(linger=_LINGER_MS)
        context.term()


def _build(engine_args: dict[str, Any], output_socket: zmq.Socket) -> Any | None:
    """The started engine after sending Ready, or None after sending StartupFailed."""
    from tenon.engine_args import EngineArgs
    from tenon.startup.engine_builder import build_engine

    try:
        engine = build_engine(EngineArgs(**engine_args), usage="server")
    except Exception as error:
        message = str(error) or type(error).__name__
        _log(f"failed to start: {message}")
        if not isinstance(error, ValueError):  # a ValueError is bad input and says what to change
            traceback.print_exc(file=sys.stderr)
        output_socket.send(encode(StartupFailed(message=message)))
        return None
    model = engine.config.model
    info = ModelInfo(
        served_model_name=model.served_model_name,
        max_model_len=model.max_model_len,
        vocab_size=int(engine.hf_config.vocab_size),
        eos_token_id=engine.eos_token_id,
        model_path=model.model,
    )
    output_socket.send(encode(model_info_to_struct(info)))
    output_socket.send(encode(stats_to_struct(engine.client.core.stats())))
    return engine


class EngineCoreLoop:
    """Feeds input messages to an `EngineCore` and sends its outputs; `run` returns the
    process exit code."""

    def __init__(
        self,
        core: EngineCore,
        input_socket: zmq.Socket,
        output_socket: zmq.Socket,
        *,
        max_waiting_requests: int,
        stats_interval_s: float,
    ) -> None:
        self.core = core
        self.input_socket = input_socket
        self.output_socket = output_socket
        self.max_waiting_requests = max_waiting_requests
        self.stats_interval_s = stats_interval_s
        self._poller = zmq.Poller()
        self._poller.register(input_socket, zmq.POLLIN)
        parent = multiprocessing.parent_process()
        # Readable once the frontend process is gone (spawn children get this pipe end).
        self._parent_sentinel: int | None = parent.sentinel if parent is not None else None
        if self._parent_sentinel is not None:
            self._poller.register(self._parent_sentinel, zmq.POLLIN)
        self._last_stats_time_s = time.monotonic()

    def run(self) -> int:
        while True:
            # Idle: sleep until a message or the parent's death. Busy: only look (timeout 0).
            timeout_ms = 0 if self.core.has_work() else None
            events = dict(self._poller.poll(timeout_ms))
            if self._parent_sentinel is not None and self._parent_sentinel in events:
                _log("the frontend process is gone; exiting")
                return 0
            if self.input_socket in events and not self._drain_inputs():
                return 0
            if self.core.has_work():
                self._step()

    def _step(self) -> None:
        outputs = self.core.step()
        if outputs:
            self._send(Outputs(outputs=[engine_output_to_struct(output) for output in outputs]))
        now_s = time.monotonic()
        if not self.core.has_work() or now_s - self._last_stats_time_s >= self.stats_interval_s:
            self._send(stats_to_struct(self.core.stats()))
            self._last_stats_time_s = now_s

    def _drain_inputs(self) -> bool:
        """Handle every pending message; False once Shutdown arrived."""
        while True:
            try:
                data = self.input_socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return True
            if not self._handle(decode_input(data)):
                return False

    def _handle(self, message: InputMessage) -> bool:
        if isinstance(message, AddRequest):
            self._add_request(message)
        elif isinstance(message, Abort):
            self.core.abort_requests(message.request_ids)
        elif isinstance(message, Shutdown):
            return False
        return True

    def _add_request(self, message: AddRequest) -> None:
        num_waiting = self.core.scheduler.num_waiting
        if num_waiting >= self.max_waiting_requests:
            self._send(RequestRejected(
                request_id=message.request_id,
                message=(f"the engine's waiting queue is full ({num_waiting} of "
                         f"{self.max_waiting_requests} requests waiting); retry later"),
                kind="queue_full",
            ))
            return
        try:
            request = Request(
                message.request_id,
                message.prompt_token_ids,
                sampling_params_from_struct(message.sampling_params),
                eos_token_id=message.eos_token_id,
                arrival_time_s=message.arrival_time_s,
            )
            self.core.add_request(request)
        except ValueError as error:
            self._send(RequestRejected(request_id=message.request_id, message=str(error), kind="invalid"))

    def _send(self, message: OutputMessage) -> None:
        self.output_socket.send(encode(message))
