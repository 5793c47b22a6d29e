"""A fake OpenAI-compatible streaming server for the `tenon bench serve` tests.

It runs aiohttp.web on 127.0.0.1 (a free port) in a thread with its own event loop, so both
async tests and the synchronous CLI (which calls `asyncio.run`) can talk to it. Each completion
streams `ceil(max_tokens / tokens_per_chunk)` chunks of ` a` per token: an empty-text chunk at
once, the first text chunk after `first_delay_s`, the rest `chunk_delay_s` apart, then a usage
chunk and `data: [DONE]`. The prompt picks a failure: `bad...` answers 400, `drop...` sends
two chunks and cuts the connection. It records every request body, its arrival time and the
peak number of requests in flight.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import attrs
from aiohttp import web

FAKE_MODEL_ID = "fake-model"
TOKEN_TEXT = " a"


@attrs.frozen
class FakeServerConfig:
    first_delay_s: float = 0.05
    chunk_delay_s: float = 0.03
    tokens_per_chunk: int = 1
    send_final_usage: bool = True


@attrs.define
class FakeServer:
    config: FakeServerConfig
    base_url: str = ""
    request_bodies: list[dict[str, Any]] = attrs.field(factory=list)
    arrival_times_s: list[float] = attrs.field(factory=list)
    num_active: int = 0
    peak_active: int = 0


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n".encode()


def _chunk(text: str, usage_tokens: int | None, prompt_tokens: int) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": "cmpl-fake", "object": "text_completion", "model": FAKE_MODEL_ID,
        "choices": [{"index": 0, "text": text, "finish_reason": None}],
    }
    if usage_tokens is not None:
        chunk["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": usage_tokens,
                          "total_tokens": prompt_tokens + usage_tokens}
    return chunk


def build_app(server: FakeServer) -> web.Application:
    config = server.config

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": FAKE_MODEL_ID, "object": "model"}]})

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        server.request_bodies.append(body)
        server.arrival_times_s.append(time.perf_counter())
        server.num_active += 1
        server.peak_active = max(server.peak_active, server.num_active)
        try:
            return await stream(request, body)
        finally:
            server.num_active -= 1

    async def stream(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        prompt = str(body["prompt"])
        if prompt.startswith("bad"):
            await asyncio.sleep(config.first_delay_s)
            return web.json_response({"error": {"message": "fake bad request"}}, status=400)
        continuous = bool(body.get("stream_options", {}).get("continuous_usage_stats"))
        prompt_tokens = len(prompt.split())
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(_sse(_chunk("", 0 if continuous else None, prompt_tokens)))
        max_tokens = int(body["max_tokens"])
        num_sent_tokens = 0
        num_chunks = 0
        while num_sent_tokens < max_tokens:
            await asyncio.sleep(config.first_delay_s if num_chunks == 0 else config.chunk_delay_s)
            if prompt.startswith("drop") and num_chunks == 2:
                assert request.transport is not None
                request.transport.abort()
                return response
            num_new_tokens = min(config.tokens_per_chunk, max_tokens - num_sent_tokens)
            num_sent_tokens += num_new_tokens
            num_chunks += 1
            usage_tokens = num_sent_tokens if continuous else None
            await response.write(_sse(_chunk(TOKEN_TEXT * num_new_tokens, usage_tokens, prompt_tokens)))
        if config.send_final_usage:
            await response.write(_sse({
                "id": "cmpl-fake", "object": "text_completion", "model": FAKE_MODEL_ID, "choices": [],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": num_sent_tokens,
                          "total_tokens": prompt_tokens + num_sent_tokens}}))
        await response.write(_sse("[DONE]"))
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/completions", completions)
    return app


class ServerThread:
    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(build_app(server), handle_signals=False)
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.started.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()

    async def _start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.server.base_url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        self.thread.start()
        assert self.started.wait(timeout=10), "the fake server did not start"

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
