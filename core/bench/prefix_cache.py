"""BENCHMARKS.md prefix-8k: time to first token after a long shared document, three ways.

One engine with a CPU tier (`--kv-offloading-size`), one random document of `prefix_len` tokens
and `num_questions` different random questions per state, asked one at a time:

    device     the document's blocks are in the device prefix cache (warmed once)
    cpu_tier   the device prefix cache is reset before each question, so the document's blocks
               come back from the CPU tier (loaded in the admitting step, before its forward)
    recompute  a fresh random document before each question: nothing to reuse, all computed

Each state uses its own questions, so a question's blocks saved by one state are never a hit in
the next. Time to first token is taken from adding the request to the step that returns its
first token; requests ask for `output_len` (default 2) tokens, so the save at their finish
happens after the clock stopped. Checked on every question: the prefix hit
(`num_cached_tokens`) covers the document's full blocks in `device` and `cpu_tier`, and is 0 in
`recompute`; the CPU tier served exactly the document's blocks per question in `cpu_tier`, and
nothing in the other two.
"""

from __future__ import annotations

import itertools
import random
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from tenon.engine.core import EngineStats
from tenon.engine.kv_tier_stats import TierStats
from tenon.engine.request import Request
from tenon.sampling.params import SamplingParams

STATES = ("device", "cpu_tier", "recompute")


@attrs.frozen(kw_only=True)
class PrefixSettings:
    prefix_len: int = 8000
    question_len: int = 32
    num_questions: int = 64
    output_len: int = 2
    seed: int = 0

    def __attrs_post_init__(self) -> None:
        for name in ("prefix_len", "question_len", "num_questions", "output_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")

    @property
    def prompt_len(self) -> int:
        return self.prefix_len + self.question_len


@attrs.frozen(kw_only=True)
class StateResult:
    state: str
    ttfts_s: tuple[float, ...]  # one per question, in order
    num_cached_tokens: tuple[int, ...]
    tier_before: tuple[TierStats, ...]
    tier_after: tuple[TierStats, ...]
    stats_before: EngineStats
    stats_after: EngineStats

    @property
    def mean_ttft_s(self) -> float:
        return statistics.fmean(self.ttfts_s)

    @property
    def median_ttft_s(self) -> float:
        return statistics.median(self.ttfts_s)

    def tier_delta(self, tier: str, field: str) -> float:
        before = next(t for t in self.tier_before if t.tier == tier)
        after = next(t for t in self.tier_after if t.tier == tier)
        return getattr(after, field) - getattr(before, field)

    def stats_delta(self, field: str) -> float:
        return getattr(self.stats_after, field) - getattr(self.stats_before, field)


@attrs.frozen(kw_only=True)
class PrefixResult:
    settings: PrefixSettings
    block_size: int
    states: dict[str, StateResult]

    @property
    def prefix_hit_tokens(self) -> int:
        """The document's full blocks: what a prefix hit covers (its last partial block and
        the question are computed)."""
        return self.settings.prefix_len // self.block_size * self.block_size


class PrefixBench:
    """Drives one `LLM` (with prefix caching and a CPU tier) through the three states."""

    def __init__(self, llm: Any, settings: PrefixSettings) -> None:
        self.llm = llm
        self.settings = settings
        self.client = llm.engine.client
        self.block_size = int(llm.config.cache.block_size)
        self.vocab_size = int(llm.engine.hf_config.vocab_size)
        self._rng = random.Random(settings.seed)
        self._request_ids = itertools.count()
        self._check_engine()

    def _check_engine(self) -> None:
        config = self.llm.config
        if not config.cache.enable_prefix_caching:
            raise ValueError("the prefix benchmark needs prefix caching; drop --no-enable-prefix-caching")
        if not any(tier.tier == "cpu" for tier in self.client.stats().kv_tier_stats):
            raise ValueError("the prefix benchmark needs a CPU KV tier; pass --kv-offloading-size GIB")
        needed = self.settings.prompt_len + self.settings.output_len
        if needed > config.model.max_model_len:
            raise ValueError(
                f"a question needs {needed} tokens (prefix, question, output) but --max-model-len is "
                f"{config.model.max_model_len}; raise it or lower --prefix-len"
            )

    def tokens(self, count: int) -> list[int]:
        return [self._rng.randrange(1, self.vocab_size) for _ in range(count)]

    def run(self) -> PrefixResult:
        settings = self.settings
        document = self.tokens(settings.prefix_len)
        # Warm-up: compiles what needs compiling, and puts the document on the device and in
        # the CPU tier (saved when the request finishes).
        self.first_token_s(document + self.tokens(settings.question_len))
        states = {
            "device": self.run_state("device", lambda: document, reset=False),
            "cpu_tier": self.run_state("cpu_tier", lambda: document, reset=True),
            "recompute": self.run_state(
                "recompute", lambda: self.tokens(settings.prefix_len), reset=False),
        }
        result = PrefixResult(settings=settings, block_size=self.block_size, states=states)
        check_result(result)
        return result

    def run_state(self, state: str, document: Callable[[], list[int]], *, reset: bool) -> StateResult:
        questions = [self.tokens(self.settings.question_len) for _ in range(self.settings.num_questions)]
        stats_before = self.client.stats()
        ttfts_s: list[float] = []
        cached: list[int] = []
        for question in questions:
            prompt = document() + question
            if reset:
                self.reset_device_prefix_cache()
            ttft_s, num_cached_tokens = self.first_token_s(prompt)
            ttfts_s.append(ttft_s)
            cached.append(num_cached_tokens)
        stats_after = self.client.stats()
        return StateResult(
            state=state, ttfts_s=tuple(ttfts_s), num_cached_tokens=tuple(cached),
            tier_before=stats_before.kv_tier_stats, tier_after=stats_after.kv_tier_stats,
            stats_before=stats_before, stats_after=stats_after,
        )

    def reset_device_prefix_cache(self) -> None:
        """Evict every cached block from the device (the CPU tier keeps its copies)."""
        manager = self.client.core.scheduler.kv_cache_manager
        if not manager.reset_prefix_cache():
            raise RuntimeError("the device prefix cache could not be reset: blocks are still in use")

    def first_token_s(self, prompt: Sequence[int]) -> tuple[float, int]:
        """Seconds from adding the request to the step that returned its first token, and its
        prefix hit in tokens; runs the request to its end."""
        params = SamplingParams(temperature=0.0, max_tokens=self.settings.output_len, ignore_eos=True)
        request_id = f"prefix-{next(self._request_ids)}"
        request = Request(request_id, list(prompt), params, eos_token_id=self.llm.engine.eos_token_id)
        start_s = time.perf_counter()
        self.client.add_request(request)
        first_s: float | None = None
        num_cached_tokens = 0
        while True:
            outputs = self.client.get_outputs()
            for output in outputs:
                if output.request_id != request_id:
                    continue
                if first_s is None and output.new_token_ids:
                    first_s = time.perf_counter() - start_s
                    num_cached_tokens = output.num_cached_tokens
                if output.is_finished:
                    assert first_s is not None, "a request finished without a token"
                    return first_s, num_cached_tokens
            if not outputs and not self.client.has_unfinished_requests():
                raise RuntimeError(f"the engine went idle before {request_id} finished")


def check_result(result: PrefixResult) -> None:
    """The states are what they claim to be (see the module's docstring); RuntimeError if not."""
    hit_tokens = result.prefix_hit_tokens
    num_blocks = hit_tokens // result.block_size
    num_questions = result.settings.num_questions
    expected = {
        # state: (smallest prefix hit per question, CPU tier blocks loaded in the state)
        "device": (hit_tokens, 0),
        "cpu_tier": (hit_tokens, num_questions * num_blocks),
        "recompute": (0, 0),
    }
    for state, (min_cached, tier_blocks) in expected.items():
        outcome = result.states[state]
        low = min(outcome.num_cached_tokens)
        high = max(outcome.num_cached_tokens)
        if low < min_cached or (state == "recompute" and high != 0):
            raise RuntimeError(
                f"{state}: prefix hits of {low} to {high} tokens, expected "
                f"{'0' if state == 'recompute' else f'at least {min_cached}'}"
            )
        loaded = int(outcome.tier_delta("cpu", "num_hit_blocks"))
        if loaded != tier_blocks:
            raise RuntimeError(f"{state}: the CPU tier served {loaded} blocks, expected {tier_blocks}")
        failures = outcome.stats_delta("kv_connector_failed_blocks_total")
        if failures:
            raise RuntimeError(f"{state}: {failures} KV blocks failed to load (and were recomputed)")
