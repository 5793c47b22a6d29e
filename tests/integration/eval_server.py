"""Fixtures of the third-party client tests (lm-eval, GuideLLM), imported by conftest.py.

`eval_server` is what `tenon serve` runs: an `AsyncEngineClient` (engine core in its own
process) behind the FastAPI app on uvicorn, on 127.0.0.1, in float32 with an API key, over the
tiny random Llama of tests/helpers (whose tokenizer lives in the same directory).

`offline_hub` turns Hugging Face's offline switches on for the session. The tools are only
ever given local paths; the switches make a GuideLLM subprocess fail rather than try the hub
(in this process, `huggingface_hub` may have read them already, at its import).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tenon.engine_args import EngineArgs
from tenon.server.async_engine import AsyncEngineClient
from tests.core.server.live_server import LiveServer, serve_in_thread
from tests.helpers.tiny_model import make_tiny_model_dir

EVAL_API_KEY = "eval-key"
EVAL_SERVED_NAME = "tiny-llama"
EVAL_MAX_MODEL_LEN = 256
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


@pytest.fixture(scope="session")
def offline_hub() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name in OFFLINE_VARIABLES:
            patch.setenv(name, "1")
        yield


@pytest.fixture(scope="session")
def eval_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model_dir(tmp_path_factory.mktemp("eval-tiny-llama"), "llama")


@pytest.fixture(scope="session")
def eval_server(eval_model_dir: Path, offline_hub: None) -> Iterator[LiveServer]:
    engine_args = EngineArgs(model=str(eval_model_dir), dtype="float32",
                             max_model_len=EVAL_MAX_MODEL_LEN, max_num_seqs=8,
                             served_model_name=EVAL_SERVED_NAME)

    async def make_engine() -> AsyncEngineClient:
        return await AsyncEngineClient.start(engine_args)

    with serve_in_thread(make_engine, api_key=EVAL_API_KEY) as live:
        yield live
