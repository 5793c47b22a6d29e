"""/v1/completions through the real `openai` client against a live server (engine in its own
process), checked against the offline `LLM` on the same model."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import pytest

from tenon import LLM, SamplingParams
from tests.core.server.live_server import LiveServer
from tests.core.server.server_fixtures import API_KEY, SERVED_NAME

PROMPT = "The quick brown fox"
GREEDY: dict[str, Any] = {"temperature": 0.0, "extra_body": {"ignore_eos": True}}


def _post(server: LiveServer, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.base_url}{path}", json=body,
                      headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)


def test_streamed_text_equals_non_streamed_and_offline(client: openai.OpenAI,
                                                         offline_llm: LLM) -> None:
    full = client.completions.create(model=SERVED_NAME, prompt=PROMPT, max_tokens=12, **GREEDY)
    chunks = list(client.completions.create(model=SERVED_NAME, prompt=PROMPT, max_tokens=12,
                                            stream=True, **GREEDY))
    expected = offline_llm.generate(PROMPT, SamplingParams(temperature=0.0, max_tokens=12,
                                                           ignore_eos=True))[0].outputs[0]
    assert full.choices[0].text == expected.text
    assert "".join(chunk.choices[0].text for chunk in chunks) == expected.text
    assert [chunk.choices[0].finish_reason for chunk in chunks][-1] == "length"
    assert all(chunk.choices[0].finish_reason is None for chunk in chunks[:-1])
    assert full.choices[0].finish_reason == "length"
    assert full.id.startswith("cmpl-") and full.object == "text_completion"
    assert full.model == SERVED_NAME


def test_usage_counts_prompt_and_generated_tokens_exactly(client: openai.OpenAI,
                                                          offline_llm: LLM) -> None:
    num_prompt_tokens = len(offline_llm.tokenizer.encode(PROMPT))
    full = client.completions.create(model=SERVED_NAME, prompt=PROMPT, max_tokens=7, **GREEDY)
    assert full.usage is not None
    assert (full.usage.prompt_tokens, full.usage.completion_tokens, full.usage.total_tokens) == (
        num_prompt_tokens, 7, num_prompt_tokens + 7)
    chunks = list(client.completions.create(
        model=SERVED_NAME, prompt=PROMPT, max_tokens=7, stream=True,
        stream_options={"include_usage": True}, **GREEDY))
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump(include={"prompt_tokens", "completion_tokens"}) == {
        "prompt_tokens": num_prompt_tokens, "completion_tokens": 7}
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_logprobs_equal_the_offline_api(client: openai.OpenAI, offline_llm: LLM) -> None:
    params = SamplingParams(temperature=0.0, max_tokens=6, ignore_eos=True, logprobs=3)
    expected = offline_llm.generate(PROMPT, params)[0].outputs[0]
    response = client.completions.create(model=SERVED_NAME, prompt=PROMPT, max_tokens=6,
                                         logprobs=3, **GREEDY)
    logprobs = response.choices[0].logprobs
    assert logprobs is not None and expected.logprobs is not None
    tokenizer = offline_llm.tokenizer
    assert logprobs.tokens == [tokenizer.decode([t]) for t in expected.token_ids]
    assert logprobs.token_logprobs == [p[t].logprob for t, p in zip(expected.token_ids,
                                                                   expected.logprobs, strict=True)]
    assert logprobs.top_logprobs == [
        {tokenizer.decode([t]): lp.logprob for t, lp in list(position.items())[:4]}
        for position in expected.logprobs]
    # Greedy: the chosen token is the best one, so each position holds the 3 best tokens.
    assert all(len(position) == 3 for position in expected.logprobs)
    offsets = [0]
    for token in logprobs.tokens[:-1]:
        offsets.append(offsets[-1] + len(token))
    assert logprobs.text_offset == offsets


def test_n_choices_match_the_offline_api_with_a_seed(client: openai.OpenAI,
                                                     offline_llm: LLM) -> None:
    expected = offline_llm.generate(PROMPT, SamplingParams(n=2, temperature=1.0, seed=7,
                                                           max_tokens=8, ignore_eos=True))[0]
    response = client.completions.create(model=SERVED_NAME, prompt=PROMPT, n=2, seed=7,
                                         temperature=1.0, max_tokens=8,
                                         extra_body={"ignore_eos": True})
    assert [c.index for c in response.choices] == [0, 1]
    assert [c.text for c in response.choices] == [o.text for o in expected.outputs]
    assert response.choices[0].text != response.choices[1].text
    assert response.usage is not None and response.usage.completion_tokens == 16
    streamed = {0: "", 1: ""}
    for chunk in client.completions.create(model=SERVED_NAME, prompt=PROMPT, n=2, seed=7,
                                           temperature=1.0, max_tokens=8, stream=True,
                                           extra_body={"ignore_eos": True}):
        streamed[chunk.choices[0].index] += chunk.choices[0].text
    assert list(streamed.values()) == [o.text for o in expected.outputs]


def test_stop_string_ends_text_and_counts_usage_as_offline(client: openai.OpenAI,
                                                           offline_llm: LLM) -> None:
    greedy = SamplingParams(temperature=0.0, max_tokens=20, ignore_eos=True)
    full = offline_llm.generate(PROMPT, greedy)[0].outputs[0].text
    stop = full[4:7]
    expected = offline_llm.generate(PROMPT, greedy.clone(stop=[stop]))[0].outputs[0]
    assert expected.text == full[: full.index(stop)]
    response = client.completions.create(model=SERVED_NAME, prompt=PROMPT, max_tokens=20,
                                         stop=[stop], **GREEDY)
    choice = response.choices[0]
    assert (choice.text, choice.finish_reason) == (expected.text, "stop")
    assert choice.model_extra is not None and choice.model_extra["stop_reason"] == stop
    assert response.usage is not None
    assert response.usage.completion_tokens == len(expected.token_ids)
    chunks = list(client.completions.create(model=SERVED_NAME, prompt=PROMPT, max_tokens=20,
                                            stop=stop, stream=True, **GREEDY))
    assert "".join(c.choices[0].text for c in chunks) == expected.text
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_echo_with_logprobs_scores_the_prompt(client: openai.OpenAI, offline_llm: LLM) -> None:
    """lm-eval's loglikelihood request: echo=True, logprobs=1, max_tokens=0."""
    tokenizer = offline_llm.tokenizer
    prompt_ids = tokenizer.encode(PROMPT)
    expected = offline_llm.generate(PROMPT, SamplingParams(max_tokens=1, prompt_logprobs=1))[0]
    assert expected.prompt_logprobs is not None
    expected_logprobs = [None] + [p[t].logprob for t, p in zip(prompt_ids[1:],
                                                               expected.prompt_logprobs[1:],
                                                               strict=True)]
    response = client.completions.create(model=SERVED_NAME, prompt=PROMPT, echo=True,
                                         logprobs=1, max_tokens=0, temperature=0.0)
    choice = response.choices[0]
    assert choice.text == PROMPT and choice.logprobs is not None
    assert choice.logprobs.tokens == [tokenizer.decode([t]) for t in prompt_ids]
    assert choice.logprobs.token_logprobs == expected_logprobs
    assert choice.logprobs.top_logprobs is not None and choice.logprobs.top_logprobs[0] is None
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (len(prompt_ids), 0)

    with_one = client.completions.create(model=SERVED_NAME, prompt=PROMPT, echo=True,
                                         logprobs=1, max_tokens=1, temperature=0.0)
    greedy_token = offline_llm.generate(PROMPT, SamplingParams(temperature=0.0, max_tokens=1))[0]
    logprobs = with_one.choices[0].logprobs
    assert logprobs is not None and logprobs.token_logprobs is not None
    assert with_one.choices[0].text == PROMPT + greedy_token.outputs[0].text
    assert logprobs.token_logprobs[:-1] == expected_logprobs
    assert len(logprobs.token_logprobs) == len(prompt_ids) + 1
    assert with_one.usage is not None and with_one.usage.completion_tokens == 1


def test_token_id_prompts_and_batches(server: LiveServer, offline_llm: LLM) -> None:
    prompts = [[5, 6, 7, 8], [40, 41, 42]]
    body = {"model": SERVED_NAME, "prompt": prompts, "max_tokens": 5, "temperature": 0.0,
            "ignore_eos": True}
    response = _post(server, "/v1/completions", body)
    assert response.status_code == 200
    data = response.json()
    expected = offline_llm.generate([{"prompt_token_ids": p} for p in prompts],
                                    SamplingParams(temperature=0.0, max_tokens=5, ignore_eos=True))
    assert [c["index"] for c in data["choices"]] == [0, 1]
    assert [c["text"] for c in data["choices"]] == [o.outputs[0].text for o in expected]
    assert data["usage"] == {"prompt_tokens": 7, "completion_tokens": 10, "total_tokens": 17}
    single = _post(server, "/v1/completions", {**body, "prompt": prompts[1]}).json()
    assert single["choices"][0]["text"] == expected[1].outputs[0].text


def test_concurrent_async_requests_equal_one_at_a_time(async_client: openai.AsyncOpenAI,
                                                       offline_llm: LLM) -> None:
    prompts = ["Hello world", "The engine", "She sells sea shells", "Numbers like 12"]
    expected = [o.outputs[0].text for o in offline_llm.generate(
        prompts, SamplingParams(temperature=0.0, max_tokens=10, ignore_eos=True))]

    async def one(prompt: str) -> str:
        stream = await async_client.completions.create(model=SERVED_NAME, prompt=prompt,
                                                       max_tokens=10, stream=True, **GREEDY)
        return "".join([chunk.choices[0].text async for chunk in stream])

    async def all_of_them() -> list[str]:
        return list(await asyncio.gather(*(one(p) for p in prompts)))

    assert asyncio.run(all_of_them()) == expected


def test_alias_name_is_served_too(client: openai.OpenAI) -> None:
    response = client.completions.create(model="tiny-alias", prompt=PROMPT, max_tokens=2)
    assert response.model == "tiny-alias"
    assert response.usage is not None and response.usage.completion_tokens <= 2


@pytest.mark.parametrize("stream", [False, True])
def test_vllm_extra_fields_reach_the_sampler(client: openai.OpenAI, offline_llm: LLM,
                                             stream: bool) -> None:
    extra = {"top_k": 5, "min_p": 0.05, "repetition_penalty": 1.3, "min_tokens": 3,
             "ignore_eos": True}
    params = SamplingParams(temperature=0.8, seed=3, max_tokens=8, top_k=5, min_p=0.05,
                            repetition_penalty=1.3, min_tokens=3, ignore_eos=True)
    expected = offline_llm.generate(PROMPT, params)[0].outputs[0].text
    response = client.completions.create(model=SERVED_NAME, prompt=PROMPT, temperature=0.8,
                                         seed=3, max_tokens=8, stream=stream, extra_body=extra)
    text = ("".join(c.choices[0].text for c in response) if stream
            else response.choices[0].text)  # type: ignore[union-attr]
    assert text == expected


@pytest.mark.parametrize("max_tokens", [0, 3])
def test_streamed_echo_with_logprobs_equals_non_streamed(client: openai.OpenAI,
                                                         max_tokens: int) -> None:
    request: dict[str, Any] = {"model": SERVED_NAME, "prompt": PROMPT, "echo": True,
                               "logprobs": 2, "max_tokens": max_tokens, "temperature": 0.0}
    full = client.completions.create(**request).choices[0]
    chunks = [c.choices[0] for c in client.completions.create(stream=True, **request)]
    assert full.logprobs is not None
    assert "".join(c.text for c in chunks) == full.text
    assert chunks[0].text.startswith(PROMPT)
    for field in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
        streamed = [item for c in chunks if c.logprobs is not None
                    for item in getattr(c.logprobs, field)]
        assert streamed == getattr(full.logprobs, field), field
    assert [c.finish_reason for c in chunks][-1] == "length"
