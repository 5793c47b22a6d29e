"""The whole engine (LLM API, scheduler, runner, reference attention) against HF generate()."""

from __future__ import annotations

import random
from pathlib import Path

from tenon import LLM, SamplingParams
from tests.helpers.tiny_model import VOCAB_SIZE, hf_greedy, load_hf_model

NEW_TOKENS = 32


def _prompts(count: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(1, VOCAB_SIZE) for _ in range(rng.randrange(3, 40))] for _ in range(count)]


def test_greedy_tokens_match_hf_in_one_batch(tiny_model_dir: Path) -> None:
    prompts = _prompts(8, seed=1)
    hf = load_hf_model(tiny_model_dir)
    expected = [hf_greedy(hf, prompt, NEW_TOKENS) for prompt in prompts]

    llm = LLM(str(tiny_model_dir), dtype="float32", log_startup=False)
    params = SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS, ignore_eos=True)
    outputs = llm.generate([{"prompt_token_ids": p} for p in prompts], params)
    got = [output.outputs[0].token_ids for output in outputs]
    assert got == expected
    assert len({tuple(tokens) for tokens in got}) == len(prompts)  # not a degenerate model
    assert all(len(set(tokens)) > 3 for tokens in got)
    llm.shutdown()
