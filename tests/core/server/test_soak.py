"""Soak: 64 concurrent streams (completions and chat), some cancelled by the client, among
malformed requests, against the live server (engine core in its own process); then the server
is healthy and idle.

Every uncancelled stream must carry exactly the offline `LLM`'s greedy text, a cancelled one a
prefix of it; every malformed request gets a 4xx in the OpenAI error shape. Afterwards the
engine must have nothing running or waiting and every KV block back in the pool.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from typing import Any

import attrs
import httpx
import openai

from tenon import LLM, SamplingParams
from tests.core.server.live_server import LiveServer
from tests.core.server.server_fixtures import API_KEY, MAX_MODEL_LEN, SERVED_NAME
from tests.helpers.tiny_model import VOCAB_SIZE

SEED = 20261126
NUM_STREAMS = 64
NUM_MALFORMED = 24
CANCEL_FRACTION = 0.3
SOAK_TIMEOUT_S = 45.0
SETTLE_TIMEOUT_S = 10.0
AUTH = {"Authorization": f"Bearer {API_KEY}"}
WORDS = ("the", "engine", "fox", "sea", "shells", "token", "Paris", "café", "12", "日本語",
         "quick", "world", "runs", "text", "über")


@attrs.frozen
class StreamCase:
    prompt: str | list[int]  # for chat, the user message
    is_chat: bool
    max_tokens: int
    cancel_after_chunks: int | None  # None: read to the end


@attrs.frozen
class MalformedCase:
    name: str
    path: str
    body: bytes
    status: int
    message: str  # a part of the error message


def _stream_cases(rng: random.Random) -> list[StreamCase]:
    cases = []
    for index in range(NUM_STREAMS):
        prompt: str | list[int]
        if index % 3 == 2:
            prompt = [rng.randrange(3, VOCAB_SIZE) for _ in range(rng.randrange(3, 40))]
        else:
            prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(2, 12)))
        cancelled = rng.random() < CANCEL_FRACTION
        # A cancelled stream asks for many tokens, so the abort lands while it still runs, also
        # on a fast machine (with 24 to 40, a 16-core host finished every one of them first).
        max_tokens = rng.randrange(60, 80) if cancelled else rng.randrange(4, 16)
        cases.append(StreamCase(prompt, index % 3 == 1, max_tokens,
                                rng.randrange(0, 6) if cancelled else None))
    return cases


def _malformed_cases(rng: random.Random) -> list[MalformedCase]:
    good: dict[str, Any] = {"model": SERVED_NAME, "prompt": "hello", "max_tokens": 4}
    chat: dict[str, Any] = {"model": SERVED_NAME, "messages": [{"role": "user", "content": "hi"}],
                            "max_tokens": 4}
    completions, chat_completions = "/v1/completions", "/v1/chat/completions"
    kinds = [
        MalformedCase("invalid json", completions,
                      b'{"model": "' + SERVED_NAME.encode() + b'", "prompt": ', 400, "not valid JSON"),
        MalformedCase("wrong type", completions,
                      json.dumps({**good, "max_tokens": "many"}).encode(), 400, "max_tokens"),
        MalformedCase("wrong messages type", chat_completions,
                      json.dumps({**chat, "messages": "hi"}).encode(), 400, "messages"),
        MalformedCase("unknown model", completions,
                      json.dumps({**good, "model": "no-such-model"}).encode(),
                      404, "`no-such-model` does not exist"),
        MalformedCase("over-long prompt", completions,
                      json.dumps({**good, "prompt": [7] * (MAX_MODEL_LEN + 5)}).encode(),
                      400, f"maximum context length is {MAX_MODEL_LEN} tokens"),
        MalformedCase("huge max_tokens", chat_completions,
                      json.dumps({**chat, "max_tokens": 10**9}).encode(),
                      400, "Please reduce the length"),
    ]
    cases = []
    for index in range(NUM_MALFORMED):
        case = kinds[index % len(kinds)]
        if rng.random() < 0.5 and case.name != "invalid json":
            # The same mistake on a streamed request must be refused before the stream starts.
            body = json.loads(case.body) | {"stream": True}
            case = attrs.evolve(case, name=f"{case.name} (stream)", body=json.dumps(body).encode())
        cases.append(case)
    return cases


async def _run_stream(client: openai.AsyncOpenAI, case: StreamCase, start_delay_s: float) -> str:
    await asyncio.sleep(start_delay_s)
    stream: Any
    if case.is_chat:
        assert isinstance(case.prompt, str)
        stream = await client.chat.completions.create(
            model=SERVED_NAME, messages=[{"role": "user", "content": case.prompt}],
            max_completion_tokens=case.max_tokens, temperature=0.0, stream=True,
            extra_body={"ignore_eos": True})
    else:
        stream = await client.completions.create(
            model=SERVED_NAME, prompt=case.prompt, max_tokens=case.max_tokens, temperature=0.0,
            stream=True, extra_body={"ignore_eos": True})
    text = ""
    num_chunks = 0
    try:
        async for chunk in stream:
            if case.cancel_after_chunks is not None and num_chunks >= case.cancel_after_chunks:
                break
            text += (chunk.choices[0].delta.content or "") if case.is_chat else chunk.choices[0].text
            num_chunks += 1
    finally:
        await stream.close()  # before the end: drops the connection, which aborts the request
    return text


async def _run_malformed(http: httpx.AsyncClient, base_url: str, case: MalformedCase,
                         start_delay_s: float) -> httpx.Response:
    await asyncio.sleep(start_delay_s)
    return await http.post(f"{base_url}{case.path}", content=case.body,
                           headers={**AUTH, "Content-Type": "application/json"})


def _metric(text: str, name: str, *, absent: float | None = None, **labels: str) -> float:
    """The sample of `name` for the served model with exactly `labels`; `absent` when there
    is none (a counter not yet incremented), and an error if that is None."""
    wanted = {"model_name": SERVED_NAME, **labels}
    for line in text.splitlines():
        found = re.fullmatch(r"([^{\s]+)\{(.*)\} (\S+)", line)
        if found and found.group(1) == name and dict(re.findall(r'(\w+)="([^"]*)"', found.group(2))) == wanted:
            return float(found.group(3))
    assert absent is not None, f"/metrics has no {name} for {wanted}"
    return absent


async def _settled_metrics(http: httpx.AsyncClient, base_url: str) -> str:
    """/metrics once the core reports nothing running, nothing waiting, an empty KV cache."""
    deadline_s = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        text = (await http.get(f"{base_url}/metrics")).text
        idle = all(_metric(text, f"vllm:{name}") == 0.0 for name in
                   ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc"))
        if idle or time.monotonic() > deadline_s:
            return text
        await asyncio.sleep(0.1)


def _offline_prompt(llm: LLM, case: StreamCase) -> Any:
    if case.is_chat:
        assert isinstance(case.prompt, str)
        return {"prompt_token_ids": llm.apply_chat_template([{"role": "user", "content": case.prompt}])}
    return case.prompt if isinstance(case.prompt, str) else {"prompt_token_ids": case.prompt}


def test_soak_streams_cancellations_and_malformed_requests(server: LiveServer,
                                                           offline_llm: LLM) -> None:
    rng = random.Random(SEED)
    streams = _stream_cases(rng)
    malformed = _malformed_cases(rng)
    finishing = [case for case in streams if case.cancel_after_chunks is None]
    assert 10 <= len(streams) - len(finishing) <= 30  # the seed gives a real mix
    offline = offline_llm.generate(
        [_offline_prompt(offline_llm, case) for case in streams],
        [SamplingParams(temperature=0.0, max_tokens=case.max_tokens, ignore_eos=True)
         for case in streams])
    expected = {id(case): output.outputs[0].text for case, output in zip(streams, offline, strict=True)}
    # Interleave: every request starts at its own random moment in the first half second.
    order = [*streams, *malformed]
    rng.shuffle(order)
    delays_s = [rng.uniform(0.0, 0.5) for _ in order]
    base_url = server.base_url

    async def soak() -> tuple[list[Any], str, str, int]:
        client = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=API_KEY, max_retries=0,
                                    timeout=SOAK_TIMEOUT_S)
        async with httpx.AsyncClient(timeout=SOAK_TIMEOUT_S) as http:
            before = (await http.get(f"{base_url}/metrics")).text
            async with asyncio.timeout(SOAK_TIMEOUT_S):
                results = await asyncio.gather(*(
                    _run_stream(client, case, delay_s) if isinstance(case, StreamCase)
                    else _run_malformed(http, base_url, case, delay_s)
                    for case, delay_s in zip(order, delays_s, strict=True)))
            after = await _settled_metrics(http, base_url)
            health = (await http.get(f"{base_url}/health")).status_code
        await client.close()
        return list(results), before, after, health

    results, before, after, health = asyncio.run(soak())

    for case, result in zip(order, results, strict=True):
        if isinstance(case, MalformedCase):
            assert isinstance(result, httpx.Response)
            assert result.status_code == case.status, (case.name, result.text)
            error = result.json()["error"]
            assert sorted(error) == ["code", "message", "param", "type"], case.name
            assert error["code"] == case.status and case.message in error["message"], case.name
        elif case.cancel_after_chunks is None:
            assert result == expected[id(case)], case
        else:
            assert expected[id(case)].startswith(result), case
    assert len({expected[id(case)] for case in finishing}) > len(finishing) // 2  # not degenerate

    assert health == 200
    for name in ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc"):
        assert _metric(after, f"vllm:{name}") == 0.0, name
    finished_by_length = (_metric(after, "vllm:request_success_total", finished_reason="length")
                          - _metric(before, "vllm:request_success_total", absent=0.0,
                                  finished_reason="length"))
    # A cancelled stream may have finished before its abort arrived, but not all of them did:
    # each asks for 60 tokens or more (the model length is 128) and is dropped within its first 5 chunks.
    assert len(finishing) <= finished_by_length < len(streams)
    # And the server still answers exactly as before.
    prompt = "The quick brown fox"
    params = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True)
    response = httpx.post(f"{base_url}/v1/completions", headers=AUTH, timeout=30, json={
        "model": SERVED_NAME, "prompt": prompt, "max_tokens": 8, "temperature": 0.0,
        "ignore_eos": True})
    assert response.json()["choices"][0]["text"] == offline_llm.generate(prompt, params)[0].outputs[0].text
