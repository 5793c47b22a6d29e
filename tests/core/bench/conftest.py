"""Fixtures for the `tenon bench serve` tests: the fake server and the tiny tokenizer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.core.bench.fake_openai_server import FakeServer, FakeServerConfig, ServerThread
from tests.helpers.tiny_tokenizer import make_tiny_tokenizer


@pytest.fixture
def start_fake_server() -> Iterator[Callable[[FakeServerConfig], FakeServer]]:
    threads: list[ServerThread] = []

    def start(config: FakeServerConfig) -> FakeServer:
        server_thread = ServerThread(FakeServer(config=config))
        server_thread.start()
        threads.append(server_thread)
        return server_thread.server

    yield start
    for server_thread in threads:
        server_thread.stop()


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_tokenizer(tmp_path_factory.mktemp("bench_serve_tokenizer"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
