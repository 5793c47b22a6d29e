"""One streamed `/v1/completions` request against any OpenAI-compatible server, timed.

Timing (all `time.perf_counter`, taken when a server-sent-event line arrives):
- TTFT: from sending the request to the first chunk whose `text` is non-empty. Chunks with
  empty text (a role-only or finish-only chunk, the final usage chunk) are not tokens the user
  sees, so they neither start nor extend the timing.
- E2E latency: from sending to the last chunk with non-empty text, so that
  `ttft_s + sum(itl_s) == latency_s` holds exactly for every request.
- ITL: the gap between consecutive non-empty chunks. A chunk may carry several tokens (a
  detokenizer holding back a partial character, speculative decoding, a server that batches
  its stream). When the server tells us how many (`usage.completion_tokens` in every chunk, which
  vLLM and SGLang send for `stream_options.continuous_usage_stats`), the gap is split evenly
  over the new tokens: a 30 ms gap that brought 3 tokens is three ITLs of 10 ms, as SGLang's
  `bench_serving` does. Without per-chunk counts each chunk counts as one token, which is what
  `vllm bench serve` records. TPOT is unaffected either way: it is computed from the total
  output token count, `(latency - ttft) / (output_tokens - 1)`.
- Output tokens: `usage.completion_tokens` of the last chunk that carries usage; `None` when the
  server sent none (the metrics step then counts them with the tokenizer).
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import attrs

_ERROR_TEXT_MAX_CHARS = 500


@attrs.frozen
class CompletionRequest:
    """What one benchmark request sends; `prompt_tokens` is our own count of `prompt`."""

    prompt: str
    prompt_tokens: int
    max_tokens: int


@attrs.frozen
class RequestSettings:
    """Fields every request of a run shares."""

    api_url: str
    model: str
    ignore_eos: bool = False
    temperature: float = 0.0
    continuous_usage_stats: bool = False


@attrs.define
class RequestResult:
    """What one request measured. `success` is False with `error` set when it failed."""

    prompt_tokens: int
    success: bool = False
    error: str | None = None
    generated_text: str = ""
    ttft_s: float | None = None
    latency_s: float | None = None
    itl_s: list[float] = attrs.field(factory=list)
    num_text_chunks: int = 0
    output_tokens: int | None = None
    server_prompt_tokens: int | None = None


def completion_payload(request: CompletionRequest, settings: RequestSettings) -> dict[str, Any]:
    """The JSON body; `ignore_eos` is vLLM's (and SGLang's) extra field, sent only when set."""
    stream_options: dict[str, Any] = {"include_usage": True}
    if settings.continuous_usage_stats:
        stream_options["continuous_usage_stats"] = True
    payload: dict[str, Any] = {
        "model": settings.model,
        "prompt": request.prompt,
        "max_tokens": request.max_tokens,
        "temperature": settings.temperature,
        "stream": True,
        "stream_options": stream_options,
    }
    if settings.ignore_eos:
        payload["ignore_eos"] = True
    return payload


def sse_data(line: bytes) -> str | None:
    """The payload of one server-sent-event `data:` line; None for blank, comment or other lines."""
    text = line.decode("utf-8").strip()
    if not text.startswith("data:"):
        return None
    return text[len("data:"):].strip()


async def send_completion_request(
    session: aiohttp.ClientSession, request: CompletionRequest, settings: RequestSettings
) -> RequestResult:
    """Send one streamed completion and time it. Never raises for server or network errors:
    they come back as `success=False` with the error text."""
    result = RequestResult(prompt_tokens=request.prompt_tokens)
    start_s = time.perf_counter()
    last_chunk_s = start_s
    # Tokens counted at the last non-empty chunk, from per-chunk usage when the server sends it.
    tokens_at_last_chunk: int | None = None
    latest_usage_tokens: int | None = None
    received_done = False
    try:
        async with session.post(settings.api_url, json=completion_payload(request, settings)) as response:
            if response.status != 200:
                body = await response.text()
                result.error = f"HTTP {response.status} {response.reason}: {body}"[:_ERROR_TEXT_MAX_CHARS]
                return result
            async for line in response.content:
                data = sse_data(line)
                if data is None or data == "":
                    continue
                if data == "[DONE]":
                    received_done = True
                    break
                chunk = json.loads(data)
                if chunk.get("error"):
                    result.error = f"error in stream: {json.dumps(chunk['error'])}"[:_ERROR_TEXT_MAX_CHARS]
                    return result
                usage = chunk.get("usage")
                if usage and usage.get("completion_tokens") is not None:
                    latest_usage_tokens = int(usage["completion_tokens"])
                    result.output_tokens = latest_usage_tokens
                    if usage.get("prompt_tokens") is not None:
                        result.server_prompt_tokens = int(usage["prompt_tokens"])
                choices = chunk.get("choices")
                text = (choices[0].get("text") or "") if choices else ""
                if not text:
                    continue
                now_s = time.perf_counter()
                if result.ttft_s is None:
                    result.ttft_s = now_s - start_s
                else:
                    num_new_tokens = 1
                    if latest_usage_tokens is not None and tokens_at_last_chunk is not None:
                        num_new_tokens = max(1, latest_usage_tokens - tokens_at_last_chunk)
                    gap_s = now_s - last_chunk_s
                    result.itl_s.extend([gap_s / num_new_tokens] * num_new_tokens)
                tokens_at_last_chunk = latest_usage_tokens
                last_chunk_s = now_s
                result.num_text_chunks += 1
                result.generated_text += text
    except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError, json.JSONDecodeError) as error:
        result.error = f"{type(error).__name__}: {error}"[:_ERROR_TEXT_MAX_CHARS]
        return result
    if not received_done:
        # A server that dies mid-stream may still end the HTTP body cleanly.
        result.error = "the stream ended before `data: [DONE]`"
        return result
    if result.ttft_s is None:
        result.error = "the stream ended without a chunk carrying text"
        return result
    result.latency_s = last_chunk_s - start_s
    result.success = True
    return result


async def fetch_model_ids(session: aiohttp.ClientSession, base_url: str) -> list[str]:
    """The model ids `GET /v1/models` lists, in the server's order."""
    async with session.get(f"{base_url.rstrip('/')}/v1/models") as response:
        if response.status != 200:
            raise ValueError(
                f"GET {base_url}/v1/models answered HTTP {response.status}; pass --model explicitly"
            )
        body = await response.json()
    return [str(entry["id"]) for entry in body.get("data", [])]
