"""What the completion and chat handlers share: the server's state, checks, SSE framing."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Coroutine, Sequence
from http import HTTPStatus
from typing import Any

import attrs
from pydantic import BaseModel

from tenon.server.engine_interface import AsyncEngine, ModelInfo
from tenon.server.errors import ENGINE_DEAD_MESSAGE, OpenAIError
from tenon.server.metrics import ServerMetrics
from tenon.server.openai_protocol import SamplingRequest, UsageInfo

SSE_DONE = "data: [DONE]\n\n"


@attrs.define
class ServerState:
    """Everything a handler needs, held by the app (`app.state.server`), never global."""

    engine: AsyncEngine
    served_model_names: tuple[str, ...]
    metrics: ServerMetrics
    # Fire-and-forget tasks (aborts sent while a handler is being cancelled) are held here,
    # because the event loop keeps only weak references to tasks.
    background_tasks: set[asyncio.Task[Any]] = attrs.field(factory=set)

    @property
    def model_info(self) -> ModelInfo:
        return self.engine.model_info

    @property
    def tokenizer(self) -> Any:
        return self.engine.tokenizer

    @property
    def model_name(self) -> str:
        return self.served_model_names[0]

    def resolve_model(self, requested: str | None) -> str:
        """The served name a request addresses; 404 for a name this server does not serve."""
        if requested is None or requested == "":
            return self.model_name
        if requested not in self.served_model_names:
            served = ", ".join(repr(name) for name in self.served_model_names)
            raise OpenAIError(f"The model `{requested}` does not exist; this server serves {served}",
                              HTTPStatus.NOT_FOUND, param="model")
        return requested

    def check_healthy(self) -> None:
        if not self.engine.is_healthy():
            raise OpenAIError(ENGINE_DEAD_MESSAGE, HTTPStatus.SERVICE_UNAVAILABLE,
                              error_type="EngineDeadError")

    def require_tokenizer(self, what: str) -> Any:
        if self.tokenizer is None:
            raise OpenAIError(f"this model has no tokenizer, so {what} is not possible; "
                              "start the server with --tokenizer")
        return self.tokenizer

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run `coroutine` in the background; safe to call while the caller is cancelled."""
        task = asyncio.ensure_future(coroutine)
        self.background_tasks.add(task)
        task.add_done_callback(self.background_tasks.discard)


def new_request_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def refuse_unsupported(request: SamplingRequest) -> None:
    refused = request.refuse_unsupported()
    if refused:
        param, message = refused[0]
        raise OpenAIError(message, HTTPStatus.BAD_REQUEST, param=param)


def check_prompt_length(num_prompt_tokens: int, max_tokens: int | None, max_model_len: int) -> None:
    """400 when the prompt (plus max_tokens, if given) cannot fit the context, as vLLM does.

    The message is OpenAI's wording, which some clients match to detect context overflow.
    """
    if num_prompt_tokens >= max_model_len:
        raise OpenAIError(
            f"This model's maximum context length is {max_model_len} tokens. However, your "
            f"request has {num_prompt_tokens} input tokens. Please reduce the length of the "
            "input messages (room is needed for at least one new token), or restart the server "
            "with a larger --max-model-len.", HTTPStatus.BAD_REQUEST, param="messages")
    if max_tokens is not None and num_prompt_tokens + max_tokens > max_model_len:
        raise OpenAIError(
            f"This model's maximum context length is {max_model_len} tokens. However, you "
            f"requested {num_prompt_tokens + max_tokens} tokens ({num_prompt_tokens} in the "
            f"messages, {max_tokens} in the completion). Please reduce the length of the "
            "messages or completion.", HTTPStatus.BAD_REQUEST, param="max_tokens")


def usage_info(num_prompt_tokens: int, num_completion_tokens: int) -> UsageInfo:
    return UsageInfo(prompt_tokens=num_prompt_tokens, completion_tokens=num_completion_tokens,
                     total_tokens=num_prompt_tokens + num_completion_tokens)


def sse_event(payload: BaseModel | dict[str, Any], *, exclude_unset: bool = False) -> str:
    if isinstance(payload, BaseModel):
        data = payload.model_dump_json(exclude_unset=exclude_unset)
    else:
        data = json.dumps(payload)
    return f"data: {data}\n\n"


def token_text(tokenizer: Any, token_id: int) -> str:
    """How a single token reads in logprobs (its decoded text, as vLLM shows it)."""
    if tokenizer is None:
        return f"token_id:{token_id}"
    text: str = tokenizer.decode([token_id])
    return text


def decode_tokens(tokenizer: Any, token_ids: Sequence[int]) -> str:
    text: str = tokenizer.decode(list(token_ids), skip_special_tokens=False)
    return text
