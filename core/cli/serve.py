"""`tenon serve [MODEL]`: the OpenAI-compatible HTTP server (FastAPI on uvicorn).

The engine core runs in its own process (`AsyncEngineClient`); this process tokenizes,
detokenizes and speaks HTTP. Flags are vLLM's: `--host`, `--port`, `--api-key`,
`--served-model-name` (one or more names) and every engine flag.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterator
from typing import Any

from tenon.engine_args import EngineArgs

DEFAULT_PORT = 8000
UVICORN_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve the OpenAI-compatible HTTP API",
        # --served-model-name is redefined below to take several names, as vLLM's does.
        conflict_handler="resolve",
    )
    parser.add_argument("model", nargs="?", default=None,
                        help="model directory or .gguf file (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: all)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    parser.add_argument("--api-key", default=None,
                        help="require 'Authorization: Bearer KEY' on the /v1 routes")
    parser.add_argument("--uvicorn-log-level", default="info", choices=UVICORN_LOG_LEVELS)
    EngineArgs.add_cli_args(parser, with_model=False)
    parser.add_argument("--served-model-name", nargs="+", default=None,
                        help="names clients may send as 'model' (default: the model argument); "
                             "the first is the one responses and metrics carry")
    parser.set_defaults(run=run)


def engine_args_from(args: argparse.Namespace) -> tuple[EngineArgs, list[str] | None]:
    """The engine's arguments and the served names (None: the engine's own name)."""
    names: list[str] | None = args.served_model_name
    values = vars(args) | {"served_model_name": names[0] if names else None}
    return EngineArgs.from_cli_args(argparse.Namespace(**values)), names


def ready_message(model_name: str, host: str, port: int, api_key: str | None) -> str:
    shown_host = "localhost" if host in ("0.0.0.0", "::", "") else host
    base_url = f"http://{shown_host}:{port}"
    auth = ' -H "Authorization: Bearer $API_KEY"' if api_key else ""
    body = ('{"model": "' + model_name + '", "messages": '
            '[{"role": "user", "content": "What is the capital of France?"}]}')
    return (f"tenon: serving {model_name} at {base_url} (OpenAI API under /v1, docs at /docs, "
            f"metrics at /metrics)\n"
            f"tenon: try: curl {base_url}/v1/chat/completions -H 'Content-Type: application/json'"
            f"{auth} -d '{body}'")


def _quiet_signal_server(config: Any) -> Any:
    """A uvicorn server that stops on SIGINT/SIGTERM without re-raising the signal afterwards
    (uvicorn does, which would kill the process before the engine core is shut down)."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            handled = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return Server(config)


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_serve(args))
    except KeyboardInterrupt:  # Ctrl-C before the server was up (during the engine's start)
        print("tenon: interrupted", file=sys.stderr)
        return 130


async def _serve(args: argparse.Namespace) -> int:
    import prometheus_client
    import uvicorn

    from tenon.server.api_server import build_app
    from tenon.server.async_engine import AsyncEngineClient, EngineStartupError

    # `*_created` series are noise to dashboards; vLLM turns them off the same way.
    prometheus_client.disable_created_metrics()
    engine_args, names = engine_args_from(args)
    try:
        engine = await AsyncEngineClient.start(engine_args)
    except EngineStartupError as error:
        print(f"tenon: the engine did not start: {error}", file=sys.stderr)
        return 1
    try:
        app = build_app(engine, api_key=args.api_key, served_model_names=names)
        config = uvicorn.Config(app, host=args.host, port=args.port,
                                log_level=args.uvicorn_log_level, timeout_graceful_shutdown=5)
        server = _quiet_signal_server(config)
        serving = asyncio.ensure_future(server.serve())
        while not server.started and not serving.done():
            await asyncio.sleep(0.05)
        if server.started:
            model_name = names[0] if names else engine.model_info.served_model_name
            print(ready_message(model_name, args.host, args.port, args.api_key), flush=True)
        await serving
    finally:
        await engine.shutdown()
    return 0
