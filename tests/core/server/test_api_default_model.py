"""`tenon serve` with no model: the default model (SmolLM2-135M-Instruct) answers over HTTP."""

from __future__ import annotations

import openai
import pytest

from tenon.default_model import DEFAULT_MODEL_NAME
from tenon.engine_args import EngineArgs
from tenon.server.async_engine import AsyncEngineClient
from tests.core.server.live_server import serve_in_thread

pytestmark = [pytest.mark.slow, pytest.mark.default_model]


def test_default_model_names_paris_streamed_and_not() -> None:
    async def make_engine() -> AsyncEngineClient:
        return await AsyncEngineClient.start(EngineArgs(model=None, max_model_len=512, max_num_seqs=4))

    with serve_in_thread(make_engine) as live:
        client = openai.OpenAI(base_url=f"{live.base_url}/v1", api_key="none", max_retries=0)
        messages: list[dict[str, str]] = [{"role": "user", "content": "What is the capital of France?"}]
        response = client.chat.completions.create(model=DEFAULT_MODEL_NAME, messages=messages,  # type: ignore[arg-type]
                                                  temperature=0.0, max_tokens=32)
        answer = response.choices[0].message.content or ""
        assert "Paris" in answer
        assert response.choices[0].finish_reason == "stop"
        stream = client.chat.completions.create(model=DEFAULT_MODEL_NAME, messages=messages,  # type: ignore[arg-type]
                                                temperature=0.0, max_tokens=32, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == answer
