"""Fixtures for tests/core/server.

`make_engine_args` and `served_engine` serve the engine-process tests (test_engine_process.py);
the HTTP server tests' fixtures live in server_fixtures.py and are imported below.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tenon.engine_args import EngineArgs
from tenon.server.async_engine import AsyncEngineClient
from tests.core.server.server_fixtures import (  # noqa: F401  (fixtures, found by name)
    async_client,
    client,
    fault_engine,
    fault_server,
    offline_llm,
    server,
    server_model_dir,
)
from tests.helpers.tiny_model import make_tiny_model_dir


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="session")
def make_engine_args(tiny_llama_dir: Path) -> Callable[..., EngineArgs]:
    def make(**overrides: Any) -> EngineArgs:
        return EngineArgs(**{"model": str(tiny_llama_dir), "dtype": "float32", "max_model_len": 256, **overrides})

    return make


@pytest.fixture(scope="module")
def served_engine(make_engine_args: Callable[..., EngineArgs]) -> Iterator[tuple[asyncio.Runner, AsyncEngineClient]]:
    with asyncio.Runner() as runner:
        client = runner.run(AsyncEngineClient.start(make_engine_args()))
        try:
            yield runner, client
        finally:
            runner.run(client.shutdown())
