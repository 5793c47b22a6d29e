"""/v1/chat/completions through the real `openai` client, checked against `LLM.chat`."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai

from tenon import LLM, SamplingParams
from tests.core.server.live_server import LiveServer
from tests.core.server.server_fixtures import API_KEY, SERVED_NAME

MESSAGES: list[Any] = [{"role": "system", "content": "You are terse."},
                       {"role": "user", "content": "Hello world! What is the capital of France?"}]
IGNORE_EOS = {"ignore_eos": True}


def test_streamed_chat_equals_non_streamed_and_offline(client: openai.OpenAI,
                                                       offline_llm: LLM) -> None:
    expected = offline_llm.chat(MESSAGES, SamplingParams(temperature=0.0, max_tokens=12,
                                                         ignore_eos=True))[0].outputs[0]
    full = client.chat.completions.create(model=SERVED_NAME, messages=MESSAGES, temperature=0.0,
                                          max_completion_tokens=12, extra_body=IGNORE_EOS)
    assert full.choices[0].message.content == expected.text
    assert full.choices[0].message.role == "assistant"
    assert full.choices[0].finish_reason == "length"
    assert full.id.startswith("chatcmpl-") and full.object == "chat.completion"
    chunks = list(client.chat.completions.create(
        model=SERVED_NAME, messages=MESSAGES, temperature=0.0, max_tokens=12, stream=True,
        stream_options={"include_usage": True}, extra_body=IGNORE_EOS))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    content_chunks = [c for c in chunks if c.choices]
    assert "".join(c.choices[0].delta.content or "" for c in content_chunks) == expected.text
    assert content_chunks[-1].choices[0].finish_reason == "length"
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    num_prompt_tokens = len(offline_llm.apply_chat_template(MESSAGES))
    assert full.usage is not None and chunks[-1].usage is not None
    assert (full.usage.prompt_tokens, full.usage.completion_tokens) == (num_prompt_tokens, 12)
    assert chunks[-1].usage.model_dump(include={"prompt_tokens", "completion_tokens"}) == {
        "prompt_tokens": num_prompt_tokens, "completion_tokens": 12}


def test_chat_logprobs_equal_the_offline_api(client: openai.OpenAI, offline_llm: LLM) -> None:
    expected = offline_llm.chat(MESSAGES, SamplingParams(temperature=0.0, max_tokens=6,
                                                         ignore_eos=True, logprobs=2))[0].outputs[0]
    assert expected.logprobs is not None
    response = client.chat.completions.create(model=SERVED_NAME, messages=MESSAGES,
                                              temperature=0.0, max_tokens=6, logprobs=True,
                                              top_logprobs=2, extra_body=IGNORE_EOS)
    logprobs = response.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    decode = offline_llm.tokenizer.decode
    assert [entry.token for entry in logprobs.content] == [decode([t]) for t in expected.token_ids]
    assert [entry.logprob for entry in logprobs.content] == [
        p[t].logprob for t, p in zip(expected.token_ids, expected.logprobs, strict=True)]
    assert [[(top.token, top.logprob) for top in entry.top_logprobs] for entry in logprobs.content] == [
        [(decode([t]), lp.logprob) for t, lp in list(position.items())[:2]]
        for position in expected.logprobs]
    assert logprobs.content[0].bytes == list(logprobs.content[0].token.encode("utf-8"))
    streamed = []
    for chunk in client.chat.completions.create(
            model=SERVED_NAME, messages=MESSAGES, temperature=0.0, max_tokens=6, logprobs=True,
            top_logprobs=2, stream=True, extra_body=IGNORE_EOS):
        if chunk.choices and chunk.choices[0].logprobs is not None:
            streamed.extend(chunk.choices[0].logprobs.content or [])
    assert [(e.token, e.logprob) for e in streamed] == [(e.token, e.logprob)
                                                         for e in logprobs.content]


def test_n_stop_and_content_parts(client: openai.OpenAI, offline_llm: LLM) -> None:
    parts: list[Any] = [{"role": "user", "content": [{"type": "text", "text": "Hello world!"},
                                                      {"type": "text", "text": "Bye."}]}]
    joined = [{"role": "user", "content": "Hello world!\nBye."}]
    expected = offline_llm.chat(joined, SamplingParams(n=2, temperature=1.0, seed=11,
                                                       max_tokens=8, ignore_eos=True))[0]
    response = client.chat.completions.create(model=SERVED_NAME, messages=parts, n=2, seed=11,
                                              temperature=1.0, max_tokens=8,
                                              extra_body=IGNORE_EOS)
    assert [c.message.content for c in response.choices] == [o.text for o in expected.outputs]
    assert response.usage is not None and response.usage.completion_tokens == 16

    greedy = SamplingParams(temperature=0.0, max_tokens=16, ignore_eos=True)
    full = offline_llm.chat(joined, greedy)[0].outputs[0].text
    stop = full[3:6]
    stopped = client.chat.completions.create(model=SERVED_NAME, messages=parts, temperature=0.0,
                                             max_tokens=16, stop=[stop], extra_body=IGNORE_EOS)
    assert stopped.choices[0].message.content == full[: full.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"


def test_default_max_tokens_fills_the_context(server: LiveServer, offline_llm: LLM) -> None:
    """Without max_tokens a chat runs until EOS or the context is full (vLLM's default)."""
    response = httpx.post(f"{server.base_url}/v1/chat/completions",
                          headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60,
                          json={"messages": MESSAGES, "temperature": 0.0, "ignore_eos": True})
    assert response.status_code == 200
    body = response.json()
    num_prompt_tokens = len(offline_llm.apply_chat_template(MESSAGES))
    assert body["model"] == SERVED_NAME  # `model` may be left out
    assert body["usage"]["completion_tokens"] == 128 - num_prompt_tokens
    assert body["choices"][0]["finish_reason"] == "length"


def test_async_client_streams(async_client: openai.AsyncOpenAI, offline_llm: LLM) -> None:
    expected = offline_llm.chat(MESSAGES, SamplingParams(temperature=0.0, max_tokens=8,
                                                         ignore_eos=True))[0].outputs[0].text

    async def run() -> tuple[str, str]:
        full = await async_client.chat.completions.create(
            model=SERVED_NAME, messages=MESSAGES, temperature=0.0, max_tokens=8,
            extra_body=IGNORE_EOS)
        stream = await async_client.chat.completions.create(
            model=SERVED_NAME, messages=MESSAGES, temperature=0.0, max_tokens=8, stream=True,
            extra_body=IGNORE_EOS)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        return full.choices[0].message.content or "", text

    assert asyncio.run(run()) == (expected, expected)


def test_continue_final_message_with_echo(client: openai.OpenAI, offline_llm: LLM) -> None:
    """Continuing a started assistant message; echo puts its start back in front (vLLM)."""
    messages: list[Any] = [{"role": "user", "content": "Hello world!"},
                           {"role": "assistant", "content": "The capital"}]
    prompt_ids = offline_llm.apply_chat_template(messages, add_generation_prompt=False)
    assert offline_llm.tokenizer.decode(prompt_ids).endswith("The capital<|im_end|>\n")
    continued = offline_llm.tokenizer.encode(
        offline_llm.tokenizer.decode(prompt_ids)[: -len("<|im_end|>\n")], add_special_tokens=False)
    expected = offline_llm.generate({"prompt_token_ids": continued},
                                    SamplingParams(temperature=0.0, max_tokens=5,
                                                   ignore_eos=True))[0].outputs[0].text
    response = client.chat.completions.create(
        model=SERVED_NAME, messages=messages, temperature=0.0, max_tokens=5,
        extra_body={"ignore_eos": True, "echo": True, "add_generation_prompt": False,
                    "continue_final_message": True})
    assert response.choices[0].message.role == "assistant"
    assert response.choices[0].message.content == "The capital" + expected
    assert response.usage is not None and response.usage.prompt_tokens == len(continued)
