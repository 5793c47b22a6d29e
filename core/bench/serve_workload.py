"""The serving benchmark's workload: random prompts, arrival times, and the request loop.

Prompts follow vLLM's random dataset: random token ids (special tokens excluded) are decoded to
text, and the text is re-encoded and trimmed or extended until it encodes to exactly the
requested number of tokens, so the server sees the prompt length we report.
Arrivals follow `vllm bench serve`: gaps drawn from a gamma distribution with shape
`burstiness` and mean `1 / request_rate` (burstiness 1 is a Poisson process), the first request
at time 0; an infinite rate sends everything at once. `--max-concurrency` is a semaphore that
requests wait on after they arrive.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import attrs
import numpy as np

from tenon.bench.serve_client import (
    CompletionRequest,
    RequestResult,
    RequestSettings,
    send_completion_request,
)

# vLLM re-encodes up to 10 times and then accepts a length mismatch. We need the exact length,
# so a sequence that has not settled after that many re-encodings is replaced by fresh random
# ids (a cut through a multi-byte character can otherwise re-grow the same way every time).
_MAX_REENCODINGS = 10
_MAX_RESAMPLES = 100


@attrs.frozen
class RandomPrompt:
    text: str
    token_ids: tuple[int, ...]

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)


def allowed_token_ids(tokenizer: Any) -> np.ndarray:
    """Every id below `tokenizer.vocab_size` that is not a special token."""
    special_ids = set(tokenizer.all_special_ids)
    # allowed_ids: [num_allowed]
    allowed_ids = np.array([i for i in range(tokenizer.vocab_size) if i not in special_ids], dtype=np.int64)
    if allowed_ids.size == 0:
        raise ValueError("the tokenizer has no non-special tokens to build random prompts from")
    return allowed_ids


def random_prompt(
    tokenizer: Any, *, input_len_tokens: int, rng: np.random.Generator, allowed_ids: np.ndarray
) -> RandomPrompt:
    """A prompt whose text encodes (without special tokens) to exactly `input_len_tokens` ids."""
    if input_len_tokens < 1:
        raise ValueError(f"--random-input-len must be at least 1, got {input_len_tokens}")
    for _ in range(_MAX_RESAMPLES):
        token_ids = allowed_ids[rng.integers(0, allowed_ids.size, size=input_len_tokens)].tolist()
        for _ in range(_MAX_REENCODINGS):
            text = tokenizer.decode(token_ids)
            token_ids = tokenizer.encode(text, add_special_tokens=False)
            if len(token_ids) == input_len_tokens:
                return RandomPrompt(text=text, token_ids=tuple(token_ids))
            if len(token_ids) > input_len_tokens:
                token_ids = token_ids[:input_len_tokens]
            else:
                missing = input_len_tokens - len(token_ids)
                token_ids += allowed_ids[rng.integers(0, allowed_ids.size, size=missing)].tolist()
    raise RuntimeError(
        f"could not build a prompt of exactly {input_len_tokens} tokens from "
        f"{_MAX_RESAMPLES} random samples; try another --seed or --random-input-len"
    )


def random_prompts(
    tokenizer: Any, *, num_prompts: int, input_len_tokens: int, seed: int
) -> list[RandomPrompt]:
    rng = np.random.default_rng(seed)
    allowed_ids = allowed_token_ids(tokenizer)
    return [
        random_prompt(tokenizer, input_len_tokens=input_len_tokens, rng=rng, allowed_ids=allowed_ids)
        for _ in range(num_prompts)
    ]


def arrival_offsets_s(
    num_requests: int, request_rate_per_s: float, *, seed: int, burstiness: float = 1.0
) -> list[float]:
    """When each request is sent, in seconds after the start (non-decreasing, first is 0)."""
    if num_requests < 0:
        raise ValueError(f"--num-prompts must be at least 0, got {num_requests}")
    if not request_rate_per_s > 0:
        raise ValueError(f"--request-rate must be positive or inf, got {request_rate_per_s}")
    if not burstiness > 0:
        raise ValueError(f"--burstiness must be positive, got {burstiness}")
    if num_requests == 0:
        return []
    if math.isinf(request_rate_per_s):
        return [0.0] * num_requests
    rng = np.random.default_rng(seed)
    # Gamma(shape k, scale 1/(rate k)) has mean 1/rate for every k; k = 1 is exponential.
    gaps_s = rng.gamma(shape=burstiness, scale=1.0 / (request_rate_per_s * burstiness), size=num_requests - 1)
    return [0.0, *np.cumsum(gaps_s).tolist()]


@attrs.frozen
class BenchmarkRun:
    results: list[RequestResult]
    duration_s: float


async def run_benchmark(
    requests: Sequence[CompletionRequest],
    settings: RequestSettings,
    *,
    arrival_offsets_s: Sequence[float],
    max_concurrency: int | None,
    num_warmups: int = 0,
    show_progress: bool = True,
    request_timeout_s: float = 6 * 3600.0,
) -> BenchmarkRun:
    """Send `requests` at their arrival offsets, at most `max_concurrency` in flight (None: no
    limit), after `num_warmups` untimed requests (the first prompt, one at a time)."""
    from tqdm.asyncio import tqdm

    if len(arrival_offsets_s) != len(requests):
        raise ValueError(f"{len(requests)} requests but {len(arrival_offsets_s)} arrival times")
    if max_concurrency is not None and max_concurrency < 1:
        raise ValueError(f"--max-concurrency must be at least 1, got {max_concurrency}")
    semaphore = asyncio.Semaphore(max_concurrency) if max_concurrency is not None else None
    # aiohttp caps connections at 100 by default, which would silently cap concurrency.
    connector = aiohttp.TCPConnector(limit=max_concurrency or 0, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=request_timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for _ in range(num_warmups if requests else 0):
            await send_completion_request(session, requests[0], settings)
        progress = tqdm(total=len(requests), disable=not show_progress, desc="requests")

        async def send(request: CompletionRequest) -> RequestResult:
            if semaphore is None:
                result = await send_completion_request(session, request, settings)
            else:
                async with semaphore:
                    result = await send_completion_request(session, request, settings)
            progress.update(1)
            return result

        start_s = time.perf_counter()
        tasks: list[asyncio.Task[RequestResult]] = []
        for request, offset_s in zip(requests, arrival_offsets_s, strict=True):
            wait_s = start_s + offset_s - time.perf_counter()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            tasks.append(asyncio.create_task(send(request)))
        results = list(await asyncio.gather(*tasks))
        duration_s = time.perf_counter() - start_s
        progress.close()
    return BenchmarkRun(results=results, duration_s=duration_s)
