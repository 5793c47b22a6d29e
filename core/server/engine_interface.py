"""What the HTTP frontend needs from the engine, wherever the engine core runs.

The frontend (FastAPI, tokenizer, chat template, detokenizer, SSE) talks to an `AsyncEngine`.
`tenon.server.async_engine.AsyncEngineClient` implements it over ZeroMQ with an engine core in
its own process; tests may use any object with the same methods.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import attrs

from tenon.engine.core import EngineStats
from tenon.engine.scheduler_output import EngineCoreOutput
from tenon.sampling.params import SamplingParams


class EngineDeadError(RuntimeError):
    """The engine-core process is gone: in-flight and new requests fail with this."""


class QueueFullError(RuntimeError):
    """The engine's waiting queue is at its limit: the request was not accepted (HTTP 503)."""


@attrs.frozen(kw_only=True)
class ModelInfo:
    """Facts about the served model, known once the engine core is ready."""

    served_model_name: str
    max_model_len: int
    vocab_size: int
    eos_token_id: int | None
    model_path: str


class AsyncEngine(Protocol):
    """The engine as the HTTP frontend sees it. All methods are called on the event loop."""

    model_info: ModelInfo
    tokenizer: Any  # a transformers tokenizer (loaded in the frontend process), or None

    def generate(
        self, request_id: str, prompt_token_ids: list[int], sampling_params: SamplingParams
    ) -> AsyncIterator[EngineCoreOutput]:
        """Submit one engine request (n == 1; the frontend fans out n) and yield its outputs
        step by step until one has `finish_reason`. Raises ValueError for a request the engine
        refuses (too long, cannot fit), EngineDeadError if the core dies, QueueFullError when the
        waiting queue is full. Cancelling the iterator (client disconnect) aborts the request in
        the engine and frees its blocks."""
        ...

    async def abort(self, request_ids: list[str]) -> None:
        """Abort requests in the engine core (unknown ids are ignored)."""

    def is_healthy(self) -> bool:
        """False once the engine-core process has died."""
        ...

    async def stats(self) -> EngineStats:
        """The latest engine stats snapshot (for /metrics)."""
        ...

    async def shutdown(self) -> None:
        """Stop the engine core and release its resources."""
