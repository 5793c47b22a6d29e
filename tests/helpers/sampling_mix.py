"""A workload that exercises every sampling feature, for tests that compare two engine modes."""

from __future__ import annotations

import random

import pytest

from tenon import SamplingParams
from tests.helpers.tiny_model import VOCAB_SIZE


def random_prompts(count: int, seed: int) -> list[dict[str, list[int]]]:
    rng = random.Random(seed)
    return [
        {"prompt_token_ids": [rng.randrange(1, VOCAB_SIZE) for _ in range(rng.randrange(2, 60))]}
        for _ in range(count)
    ]


def mixed_params(count: int) -> list[SamplingParams]:
    """A mix: greedy, seeded sampling, EOS with min_tokens, stop tokens, logprobs, short
    max_tokens, and penalties (rows that need every earlier token on the host)."""
    kinds = [
        SamplingParams(temperature=0.0, max_tokens=20, ignore_eos=True),
        SamplingParams(temperature=0.9, top_k=20, seed=11, max_tokens=17, ignore_eos=True),
        SamplingParams(temperature=0.0, max_tokens=30, min_tokens=3),  # EOS (id 0) may stop it
        SamplingParams(temperature=1.0, seed=5, max_tokens=25, stop_token_ids=[3, 7, 9]),
        SamplingParams(temperature=0.0, max_tokens=12, logprobs=2, ignore_eos=True),
        SamplingParams(temperature=0.0, max_tokens=1, ignore_eos=True),
        SamplingParams(temperature=0.7, seed=3, presence_penalty=0.5, frequency_penalty=0.3,
                       max_tokens=15, ignore_eos=True),
        SamplingParams(temperature=0.0, repetition_penalty=1.3, max_tokens=9, ignore_eos=True),
    ]
    return [kinds[index % len(kinds)] for index in range(count)]


def assert_logprobs_close(got: list | None, expected: list | None, index: int) -> None:
    """Same tokens and ranks; values equal up to float32 noise (steps are batched differently
    when scheduling runs ahead, and batching changes the last bits)."""
    assert (got is None) == (expected is None), f"prompt {index}: logprobs missing on one side"
    if got is None or expected is None:
        return
    assert len(got) == len(expected)
    for position, (got_top, expected_top) in enumerate(zip(got, expected, strict=True)):
        assert got_top.keys() == expected_top.keys(), f"prompt {index} position {position}"
        for token_id, logprob in got_top.items():
            assert logprob.rank == expected_top[token_id].rank
            assert logprob.logprob == pytest.approx(expected_top[token_id].logprob, abs=1e-4)
