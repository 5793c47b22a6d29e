"""`vllm bench latency`'s measurement on the offline `LLM`: one batch, end to end, repeated.

Each iteration draws fresh random prompts (seeded), so prefix caching cannot turn the prefill
into a cache hit as it would if one prompt were repeated. Decoding is greedy with `ignore_eos`,
so every request makes exactly `output_len` tokens.

The offline API returns finished requests only, so time to first token is measured by running
the same batch with one output token, and the time per output token is derived from the two:

    tpot = (mean latency with output_len tokens - mean latency with 1 token) / (output_len - 1)
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

import attrs
import numpy as np


@attrs.frozen(kw_only=True)
class LatencySettings:
    input_len: int = 128
    output_len: int = 256
    batch_size: int = 1
    num_iters_warmup: int = 3
    num_iters: int = 10
    seed: int = 0

    def __attrs_post_init__(self) -> None:
        for name in ("input_len", "output_len", "batch_size", "num_iters"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.num_iters_warmup < 0:
            raise ValueError(f"--num-iters-warmup must be at least 0, got {self.num_iters_warmup}")


@attrs.frozen(kw_only=True)
class LatencyResult:
    settings: LatencySettings
    latencies_s: tuple[float, ...]  # one per iteration, output_len tokens per request
    first_token_latencies_s: tuple[float, ...]  # one per iteration, one token per request

    @property
    def mean_latency_s(self) -> float:
        return statistics.fmean(self.latencies_s)

    @property
    def ttft_s(self) -> float:
        return statistics.fmean(self.first_token_latencies_s)

    @property
    def tpot_s(self) -> float | None:
        """Per-output-token time after the first; None with one output token."""
        if self.settings.output_len == 1:
            return None
        return (self.mean_latency_s - self.ttft_s) / (self.settings.output_len - 1)

    @property
    def stream_output_tokens_per_s(self) -> float:
        """What one request of the batch sees: its tokens over the whole latency."""
        return self.settings.output_len / self.mean_latency_s

    @property
    def output_tokens_per_s(self) -> float:
        return self.settings.batch_size * self.stream_output_tokens_per_s

    @property
    def decode_tokens_per_s(self) -> float | None:
        """One request's decode rate with the prefill left out: 1 / tpot."""
        tpot_s = self.tpot_s
        return None if tpot_s is None or tpot_s <= 0 else 1.0 / tpot_s

    def as_dict(self) -> dict[str, Any]:
        tpot_s = self.tpot_s
        return {
            **attrs.asdict(self.settings),
            **_summary_ms("latency", self.latencies_s),
            **_summary_ms("ttft", self.first_token_latencies_s),
            "tpot_ms": None if tpot_s is None else tpot_s * 1000.0,
            "stream_output_tokens_per_s": self.stream_output_tokens_per_s,
            "output_tokens_per_s": self.output_tokens_per_s,
            "decode_tokens_per_s": self.decode_tokens_per_s,
            "latencies_s": list(self.latencies_s),
            "first_token_latencies_s": list(self.first_token_latencies_s),
        }


def _summary_ms(name: str, samples_s: tuple[float, ...]) -> dict[str, float]:
    """vLLM's keys (`mean_ttft_ms`, `p99_latency_ms`, ...); percentiles interpolate linearly."""
    # samples_ms: [num_iters]
    samples_ms = np.asarray(samples_s, dtype=np.float64) * 1000.0
    return {
        f"mean_{name}_ms": float(samples_ms.mean()),
        f"median_{name}_ms": float(np.median(samples_ms)),
        f"p90_{name}_ms": float(np.percentile(samples_ms, 90)),
        f"p99_{name}_ms": float(np.percentile(samples_ms, 99)),
    }


def random_prompts(rng: random.Random, batch_size: int, input_len: int, vocab_size: int) -> list[dict[str, list[int]]]:
    return [{"prompt_token_ids": [rng.randrange(vocab_size) for _ in range(input_len)]} for _ in range(batch_size)]


def _timed_batches(llm: Any, rng: random.Random, settings: LatencySettings, output_len: int,
                   num_iters: int) -> list[float]:
    from tenon.sampling.params import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=output_len, ignore_eos=True, detokenize=False)
    vocab_size = int(llm.engine.hf_config.vocab_size)
    latencies_s = []
    for _ in range(num_iters):
        prompts = random_prompts(rng, settings.batch_size, settings.input_len, vocab_size)
        start_s = time.perf_counter()
        outputs = llm.generate(prompts, params)
        latencies_s.append(time.perf_counter() - start_s)
        made = [len(output.outputs[0].token_ids) for output in outputs]
        if made != [output_len] * settings.batch_size:
            raise RuntimeError(f"asked for {output_len} tokens per request, got {made}")
    return latencies_s


def run_latency(llm: Any, settings: LatencySettings) -> LatencyResult:
    """Warm up, then time `num_iters` batches of `output_len` tokens and `num_iters` of one."""
    rng = random.Random(settings.seed)
    _timed_batches(llm, rng, settings, settings.output_len, settings.num_iters_warmup)
    latencies_s = _timed_batches(llm, rng, settings, settings.output_len, settings.num_iters)
    first_token_latencies_s = _timed_batches(llm, rng, settings, 1, settings.num_iters)
    return LatencyResult(settings=settings, latencies_s=tuple(latencies_s),
                         first_token_latencies_s=tuple(first_token_latencies_s))


def latency_record(result: LatencyResult, *, model: str, workload: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The BENCHMARKS.md record, with placeholders for the baseline and the limit."""
    from tenon.bench.record_comparisons import no_baseline
    from tenon.bench.report import result_record

    return result_record(
        workload=workload, model=model, value=result.output_tokens_per_s, unit="output tokens/s",
        baseline=no_baseline(), limit=None, extra={"latency": result.as_dict(), **extra},
    )
