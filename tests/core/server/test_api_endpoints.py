"""/v1/models, /health, /tokenize, /detokenize, /version, /docs and /metrics."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
from prometheus_client.parser import text_string_to_metric_families

import tenon
from tenon import LLM
from tests.core.server.live_server import LiveServer
from tests.core.server.server_fixtures import ALIAS_NAME, API_KEY, MAX_MODEL_LEN, SERVED_NAME

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def test_models_lists_every_served_name(client: openai.OpenAI, server: LiveServer) -> None:
    models = client.models.list()
    assert [model.id for model in models.data] == [SERVED_NAME, ALIAS_NAME]
    card = models.data[0].model_dump()
    assert card["root"] == server.engine.model_info.model_path
    assert card["max_model_len"] == MAX_MODEL_LEN and card["object"] == "model"


def test_health_version_and_docs(server: LiveServer) -> None:
    health = httpx.get(f"{server.base_url}/health", timeout=60)
    assert (health.status_code, health.content) == (200, b"")
    assert httpx.get(f"{server.base_url}/version", timeout=60).json() == {"version": tenon.__version__}
    assert httpx.get(f"{server.base_url}/docs", timeout=60).status_code == 200
    paths = httpx.get(f"{server.base_url}/openapi.json", timeout=60).json()["paths"]
    assert {"/v1/completions", "/v1/chat/completions", "/tokenize"} <= set(paths)


def test_tokenize_and_detokenize_round_trip(server: LiveServer, offline_llm: LLM) -> None:
    text = "Hello world! Café 😀"
    tokens = httpx.post(f"{server.base_url}/tokenize", json={"prompt": text}, timeout=60).json()
    expected_ids = offline_llm.tokenizer.encode(text)
    assert tokens == {"count": len(expected_ids), "max_model_len": MAX_MODEL_LEN,
                      "tokens": expected_ids}
    back = httpx.post(f"{server.base_url}/detokenize", json={"tokens": expected_ids}, timeout=60)
    assert back.json() == {"prompt": text}
    messages = [{"role": "user", "content": "Hi there"}]
    chat = httpx.post(f"{server.base_url}/tokenize", json={"messages": messages}, timeout=60).json()
    assert chat["tokens"] == offline_llm.apply_chat_template(messages)
    bad = httpx.post(f"{server.base_url}/detokenize", json={"tokens": [5, 10**6]}, timeout=60)
    assert bad.status_code == 400 and "outside the vocabulary" in bad.json()["error"]["message"]
    unknown = httpx.post(f"{server.base_url}/tokenize", json={"model": "x", "prompt": "a"})
    assert unknown.status_code == 404


def _scrape(server: LiveServer) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    text = httpx.get(f"{server.base_url}/metrics", timeout=60).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return text, samples


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted({"model_name": SERVED_NAME, **labels}.items()))), 0.0)


def _scrape_when_idle(server: LiveServer) -> tuple[str, dict[Any, float]]:
    """The engine's stats snapshot trails its outputs a little; wait for the idle one."""
    deadline_s = time.monotonic() + 10
    while True:
        text, samples = _scrape(server)
        if _value(samples, "vllm:num_requests_running") == 0 or time.monotonic() > deadline_s:
            return text, samples
        time.sleep(0.05)


def test_metrics_under_both_prefixes_count_a_request_exactly(server: LiveServer) -> None:
    _, before = _scrape_when_idle(server)
    body = {"model": SERVED_NAME, "prompt": [11, 12, 13, 14, 15], "max_tokens": 4,
            "temperature": 0.0, "ignore_eos": True}
    response = httpx.post(f"{server.base_url}/v1/completions", json=body, headers=AUTH, timeout=60)
    assert response.status_code == 200
    text, after = _scrape_when_idle(server)
    for prefix in ("vllm", "tenon"):
        assert f'{prefix}:num_requests_running{{model_name="{SERVED_NAME}"}} 0.0' in text
        assert f'{prefix}:kv_cache_usage_perc{{model_name="{SERVED_NAME}"}} 0.0' in text
        assert _value(after, f"{prefix}:num_requests_waiting") == 0

        def delta(name: str, prefix: str = prefix, **labels: str) -> float:
            full_name = f"{prefix}:{name}"
            return _value(after, full_name, **labels) - _value(before, full_name, **labels)

        assert delta("prompt_tokens_total") == 5
        assert delta("generation_tokens_total") == 4
        assert delta("request_success_total", finished_reason="length") == 1
        assert delta("time_to_first_token_seconds_count") == 1
        assert delta("inter_token_latency_seconds_count") == 3  # one token per output
        assert delta("e2e_request_latency_seconds_count") == 1
        assert delta("request_queue_time_seconds_count") == 1
        assert delta("prefix_cache_queries_total") == 5
        assert _value(after, f"{prefix}:num_preemptions_total") == 0
    assert _value(after, "vllm:e2e_request_latency_seconds_sum") > 0
