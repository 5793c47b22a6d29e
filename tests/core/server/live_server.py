"""A real uvicorn server on 127.0.0.1 (a free port) in a background thread, for client tests.

The engine is made inside the server's event loop (an `AsyncEngineClient` must be used from
the loop it started on), and shut down when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

import attrs
import uvicorn

from tenon.server.api_server import build_app

START_TIMEOUT_S = 120.0


@attrs.define
class LiveServer:
    base_url: str  # http://127.0.0.1:PORT
    engine: Any
    loop: asyncio.AbstractEventLoop
    api_key: str | None

    def call(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine on the server's loop (engine calls must happen there)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)


@contextlib.contextmanager
def serve_in_thread(make_engine: Callable[[], Awaitable[Any]], *, api_key: str | None = None,
                    served_model_names: list[str] | None = None) -> Iterator[LiveServer]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    started: dict[str, Any] = {}

    async def main() -> None:
        try:
            engine = await make_engine()
        except BaseException as error:
            started["error"] = error
            raise
        app = build_app(engine, api_key=api_key, served_model_names=served_model_names)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=5)
        server = uvicorn.Server(config)
        started.update(engine=engine, server=server, loop=asyncio.get_running_loop())
        try:
            await server.serve(sockets=[listener])
        finally:
            await engine.shutdown()

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="live-server", daemon=True)
    thread.start()
    deadline_s = time.monotonic() + START_TIMEOUT_S
    while not (started.get("server") is not None and started["server"].started):
        if "error" in started:
            raise RuntimeError("the test server's engine failed to start") from started["error"]
        if not thread.is_alive() or time.monotonic() > deadline_s:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(base_url=f"http://127.0.0.1:{port}", engine=started["engine"],
                         loop=started["loop"], api_key=api_key)
    finally:
        started["server"].should_exit = True
        thread.join(timeout=30)
        listener.close()
