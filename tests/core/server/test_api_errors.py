"""Every refusal comes back with the right status and the OpenAI error shape."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.core.server.inprocess_engine import InProcessAsyncEngine
from tests.core.server.live_server import LiveServer
from tests.core.server.server_fixtures import API_KEY, MAX_MODEL_LEN, SERVED_NAME

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The error object, after checking the status and the exact shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"]
    error: dict[str, Any] = body["error"]
    assert sorted(error) == ["code", "message", "param", "type"]
    assert error["code"] == status and isinstance(error["message"], str)
    return error


def _completion(server: LiveServer, **fields: Any) -> httpx.Response:
    body = {"model": SERVED_NAME, "prompt": "hello", "max_tokens": 4, **fields}
    return httpx.post(f"{server.base_url}/v1/completions", json=body, headers=AUTH, timeout=60)


def _chat(server: LiveServer, **fields: Any) -> httpx.Response:
    body = {"model": SERVED_NAME, "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 4, **fields}
    return httpx.post(f"{server.base_url}/v1/chat/completions", json=body, headers=AUTH,
                      timeout=60)


@pytest.mark.parametrize(("fields", "param", "message"), [
    ({"temperature": -1.0}, None, "temperature must be >= 0"),
    ({"suffix": "x"}, "suffix", "suffix is not supported"),
    ({"max_tokens": 0}, "max_tokens", "only with echo=true"),
    ({"prompt": [1, 99999]}, None, "outside the vocabulary"),
    ({"prompt": []}, None, "prompt is empty"),
    ({"logprobs": 21}, None, "logprobs must be <= max_logprobs (20)"),
    ({"max_tokens": "many"}, "max_tokens", "max_tokens"),
    ({"n": 0}, None, "n must be >= 1"),
    ({"logit_bias": {"5": 1.0}}, "logit_bias", "logit_bias is not supported"),
    ({"stream_options": {"include_usage": True}}, "stream_options", "only allowed with stream=true"),
])
def test_invalid_completion_parameters_are_400(server: LiveServer, fields: dict[str, Any],
                                               param: str | None, message: str) -> None:
    error = _error(_completion(server, **fields), 400)
    assert error["type"] == "BadRequestError"
    assert message in error["message"]
    if param is not None:
        assert error["param"] == param


def test_over_long_prompts_name_both_lengths(server: LiveServer) -> None:
    error = _error(_completion(server, prompt=[7] * 130), 400)
    assert f"maximum context length is {MAX_MODEL_LEN} tokens" in error["message"]
    assert "your request has 130 input tokens" in error["message"]
    error = _error(_completion(server, prompt=[7] * 100, max_tokens=50), 400)
    assert "you requested 150 tokens (100 in the messages, 50 in the completion)" in error["message"]
    error = _error(_chat(server, messages=[{"role": "user", "content": "x" * 200}]), 400)
    assert f"maximum context length is {MAX_MODEL_LEN} tokens" in error["message"]


def test_invalid_chat_requests_are_400(server: LiveServer) -> None:
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    assert "'image_url' is not supported" in _error(_chat(server, messages=image), 400)["message"]
    assert "needs logprobs=true" in _error(_chat(server, top_logprobs=2), 400)["message"]
    both = _chat(server, continue_final_message=True)
    assert "needs add_generation_prompt=false" in _error(both, 400)["message"]
    error = _error(_chat(server, messages="hi"), 400)  # wrong type: FastAPI's validation
    assert error["param"] == "messages"
    error = _error(_chat(server, messages=None, prompt="hi"), 400)
    assert "messages" in error["message"]


def test_bad_json_is_400_in_the_openai_shape(server: LiveServer) -> None:
    response = httpx.post(f"{server.base_url}/v1/completions", content=b"{not json",
                          headers={**AUTH, "Content-Type": "application/json"}, timeout=60)
    assert "JSON" in _error(response, 400)["message"]


def test_wrong_or_missing_api_key_is_401(server: LiveServer) -> None:
    bad = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        bad.completions.create(model=SERVED_NAME, prompt="hi", max_tokens=2)
    assert raised.value.status_code == 401
    response = httpx.post(f"{server.base_url}/v1/completions", json={"prompt": "hi"}, timeout=60)
    assert _error(response, 401)["type"] == "AuthenticationError"
    # Probes and scrapers need no key, as in vLLM.
    assert httpx.get(f"{server.base_url}/health", timeout=60).status_code == 200


def test_unknown_model_is_404(client: openai.OpenAI, server: LiveServer) -> None:
    with pytest.raises(openai.NotFoundError, match="The model `gpt-4` does not exist"):
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
    error = _error(_completion(server, model="gpt-4"), 404)
    assert (error["type"], error["param"]) == ("NotFoundError", "model")
    assert _error(httpx.get(f"{server.base_url}/v1/nothing-here", headers=AUTH), 404)


def test_queue_full_is_503(fault_server: LiveServer, fault_engine: InProcessAsyncEngine) -> None:
    from tenon.server.engine_interface import QueueFullError

    for stream in (False, True):
        fault_engine.fail_next_with = QueueFullError("1 of 1 requests waiting")
        response = httpx.post(f"{fault_server.base_url}/v1/completions", timeout=60,
                              json={"prompt": "hello", "max_tokens": 3, "stream": stream})
        error = _error(response, 503)
        assert error["type"] == "QueueFullError"
        assert "waiting queue is full" in error["message"]
    ok = httpx.post(f"{fault_server.base_url}/v1/completions", timeout=60,
                    json={"prompt": "hello", "max_tokens": 3})
    assert ok.status_code == 200
