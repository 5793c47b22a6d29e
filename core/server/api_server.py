"""The OpenAI-compatible HTTP app: `build_app(engine, ...)` returns a FastAPI app over an engine.

Endpoints (vLLM's paths, so clients and tools work unchanged):

    POST /v1/completions        POST /v1/chat/completions     GET /v1/models
    GET  /health                GET  /metrics                 GET /version
    POST /tokenize              POST /detokenize              GET /docs (FastAPI's own)

With an API key, routes under /v1 need `Authorization: Bearer <key>` (as vLLM; /health and
/metrics stay open for probes and scrapers). A client that disconnects while its request runs
gets the request aborted in the engine, whether it was streaming or waiting for one body.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Coroutine, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

import tenon
from tenon.engine.core import EngineStats
from tenon.frontend.input_processor import apply_chat_template
from tenon.server.engine_interface import AsyncEngine
from tenon.server.errors import (
    ENGINE_DEAD_MESSAGE,
    OpenAIError,
    error_body,
    error_response,
    from_engine_error,
    install_error_handlers,
)
from tenon.server.metrics import ServerMetrics
from tenon.server.openai_protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    DetokenizeResponse,
    ModelCard,
    ModelList,
    TokenizeRequest,
    TokenizeResponse,
)
from tenon.server.serving_chat import create_chat_completion, message_dicts
from tenon.server.serving_common import ServerState
from tenon.server.serving_completions import create_completion

logger = logging.getLogger("tenon.server")

# nginx's code for "client closed the request"; the client is gone and never reads it.
CLIENT_CLOSED_REQUEST = 499


class ApiKeyMiddleware:
    """Refuses requests under /v1 without `Authorization: Bearer <api_key>` (401)."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"] != "OPTIONS"
                and scope["path"].startswith("/v1")):
            given = Headers(scope=scope).get("authorization", "").encode()
            if not secrets.compare_digest(given, self.expected):
                body = error_body("Incorrect API key provided; send 'Authorization: Bearer "
                                  "<key>' with the key the server was started with (--api-key)",
                                  HTTPStatus.UNAUTHORIZED)
                await JSONResponse(body, status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _wait_for_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def serve_until_disconnect(request: Request, handler: Coroutine[Any, Any, Response]) -> Response:
    """Run `handler`, cancelling it (which aborts its engine requests) if the client leaves
    first; answer exceptions in the OpenAI error shape."""
    handler_task = asyncio.ensure_future(handler)
    watcher = asyncio.ensure_future(_wait_for_disconnect(request))
    try:
        done, _ = await asyncio.wait({handler_task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not handler_task.done():
            handler_task.cancel()
    if handler_task not in done:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    try:
        return handler_task.result()
    except Exception as error:
        answer = from_engine_error(error)
        if answer.status == HTTPStatus.INTERNAL_SERVER_ERROR:
            logger.exception("request failed", exc_info=error)
        return error_response(answer)


def build_app(engine: AsyncEngine, *, api_key: str | None = None,
              served_model_names: Sequence[str] | None = None) -> FastAPI:
    """The app over `engine`. `served_model_names` are the names clients may send as `model`
    (default: the engine's served name); the first is the one responses and metrics carry."""
    names = tuple(served_model_names or (engine.model_info.served_model_name,))
    state = ServerState(engine=engine, served_model_names=names, metrics=ServerMetrics(names[0]))
    app = FastAPI(title="Tenon OpenAI-compatible server", version=tenon.__version__)
    app.state.server = state
    install_error_handlers(app)
    if api_key:
        app.add_middleware(ApiKeyMiddleware, api_key=api_key)

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request) -> Response:
        arrival_s = time.monotonic()
        return await serve_until_disconnect(request, create_completion(state, body, arrival_s))

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        arrival_s = time.monotonic()
        return await serve_until_disconnect(request, create_chat_completion(state, body, arrival_s))

    @app.get("/v1/models")
    async def models() -> ModelList:
        info = state.model_info
        return ModelList(data=[ModelCard(id=name, root=info.model_path, max_model_len=info.max_model_len)
                               for name in names])

    @app.get("/health")
    async def health() -> Response:
        if not engine.is_healthy():
            return JSONResponse(error_body(ENGINE_DEAD_MESSAGE, HTTPStatus.SERVICE_UNAVAILABLE,
                                           error_type="EngineDeadError"), status_code=503)
        return Response(status_code=200)

    @app.get("/metrics")
    async def metrics() -> Response:
        stats: EngineStats | None = None
        if engine.is_healthy():
            try:
                stats = await engine.stats()
            except Exception:  # a scrape must not fail because the engine is going away
                logger.warning("engine stats unavailable; /metrics shows the last snapshot")
        return Response(state.metrics.render(stats), media_type=CONTENT_TYPE_LATEST)

    @app.get("/version")
    async def version() -> dict[str, str]:
        return {"version": tenon.__version__}

    @app.post("/tokenize")
    async def tokenize(body: TokenizeRequest) -> TokenizeResponse:
        state.resolve_model(body.model)
        tokenizer = state.require_tokenizer("tokenizing")
        if body.messages is not None:
            try:
                token_ids = apply_chat_template(
                    tokenizer, message_dicts(body.messages),
                    add_generation_prompt=body.add_generation_prompt,
                    continue_final_message=body.continue_final_message,
                    chat_template_kwargs=body.chat_template_kwargs)
            except ValueError as error:
                raise OpenAIError(str(error), param="messages") from error
            if body.add_special_tokens:
                raise OpenAIError("add_special_tokens is not allowed with messages: the chat "
                                  "template writes the special tokens", param="add_special_tokens")
        elif body.prompt is not None:
            add_special_tokens = True if body.add_special_tokens is None else body.add_special_tokens
            token_ids = list(tokenizer.encode(body.prompt, add_special_tokens=add_special_tokens))
        else:
            raise OpenAIError("send either 'prompt' or 'messages'", param="prompt")
        return TokenizeResponse(count=len(token_ids), max_model_len=state.model_info.max_model_len,
                                tokens=token_ids)

    @app.post("/detokenize")
    async def detokenize(body: DetokenizeRequest) -> DetokenizeResponse:
        state.resolve_model(body.model)
        tokenizer = state.require_tokenizer("detokenizing")
        vocab_size = state.model_info.vocab_size
        bad = [token_id for token_id in body.tokens if not 0 <= token_id < vocab_size]
        if bad:
            raise OpenAIError(f"token id {bad[0]} is outside the vocabulary (0..{vocab_size - 1})",
                              param="tokens")
        return DetokenizeResponse(prompt=tokenizer.decode(body.tokens))

    return app
