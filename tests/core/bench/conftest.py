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


@pytest.fixture(scope="session")
def tiny_dummy_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config.json only (tiny llama, untied, no tokenizer): for `--load-format dummy`."""
    import transformers

    config = transformers.LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=320, max_position_embeddings=256, tie_word_embeddings=False,
        bos_token_id=0, eos_token_id=0,
    )
    config.architectures = ["LlamaForCausalLM"]
    path = tmp_path_factory.mktemp("bench_dummy_model")
    config.save_pretrained(path)
    return path
