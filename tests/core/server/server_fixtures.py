"""Fixtures of the HTTP server tests (imported by conftest.py): live servers and references.

- `server`: the real thing, an `AsyncEngineClient` (engine core in its own process) behind
  uvicorn, with an API key and two served names. Most tests use it.
- `fault_server`: the in-process test engine, which can be slowed down, killed and made to
  refuse requests, for the failure paths.
- `offline_llm`: the offline `LLM` on the same model, the reference for text and logprobs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tenon import LLM
from tenon.engine_args import EngineArgs
from tenon.server.async_engine import AsyncEngineClient
from tenon.startup.engine_builder import build_engine
from tenon.startup.phases import StartupLog
from tests.core.server.inprocess_engine import InProcessAsyncEngine
from tests.core.server.live_server import LiveServer, serve_in_thread
from tests.helpers.tiny_model import make_tiny_model_dir

MAX_MODEL_LEN = 128
API_KEY = "test-key"
SERVED_NAME = "tiny-llama"
ALIAS_NAME = "tiny-alias"


def tiny_engine_args(model_dir: Path) -> EngineArgs:
    return EngineArgs(model=str(model_dir), dtype="float32", max_model_len=MAX_MODEL_LEN, max_num_seqs=8,
                      served_model_name=SERVED_NAME)


@pytest.fixture(scope="session")
def server_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model_dir(tmp_path_factory.mktemp("server-tiny-llama"), "llama")


@pytest.fixture(scope="session")
def server(server_model_dir: Path) -> Iterator[LiveServer]:
    async def make_engine() -> AsyncEngineClient:
        return await AsyncEngineClient.start(tiny_engine_args(server_model_dir))

    with serve_in_thread(make_engine, api_key=API_KEY,
                         served_model_names=[SERVED_NAME, ALIAS_NAME]) as live:
        yield live


@pytest.fixture(scope="session")
def fault_server(server_model_dir: Path) -> Iterator[LiveServer]:
    async def make_engine() -> InProcessAsyncEngine:
        return InProcessAsyncEngine(build_engine(tiny_engine_args(server_model_dir),
                                                 log=StartupLog(echo=None)))

    with serve_in_thread(make_engine) as live:
        yield live


@pytest.fixture
def fault_engine(fault_server: LiveServer) -> Iterator[InProcessAsyncEngine]:
    engine: InProcessAsyncEngine = fault_server.engine
    yield engine
    engine.step_delay_s = 0.0
    engine.fail_next_with = None
    fault_server.loop.call_soon_threadsafe(engine.revive)


@pytest.fixture(scope="session")
def offline_llm(server_model_dir: Path) -> Iterator[LLM]:
    llm = LLM(str(server_model_dir), dtype="float32", log_startup=False, max_model_len=MAX_MODEL_LEN,
              max_num_seqs=8)
    yield llm
    llm.shutdown()


@pytest.fixture
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=API_KEY, max_retries=0)


@pytest.fixture
def async_client(server: LiveServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key=API_KEY, max_retries=0)
