"""What the offline diagnostics share: the 8B dummy engine and a batch of random prompts
(`tenon.bench.latency.random_prompts`) with greedy, EOS-ignoring parameters."""

from __future__ import annotations

import random
import sys

from tenon import LLM, SamplingParams
from tenon.bench.latency import random_prompts

MODEL = "benchmarks/configs/llama-3.1-8b"


def workload_from_argv(defaults: tuple[int, int, int]) -> tuple[int, int, int]:
    """(num_prompts, input_len, output_len) from the command line, each defaulting in order."""
    given = [int(arg) for arg in sys.argv[1:4]]
    return tuple(given + list(defaults[len(given):]))  # type: ignore[return-value]


def dummy_llm() -> LLM:
    return LLM(MODEL, load_format="dummy", dtype="bfloat16", max_model_len=4096, log_startup=False)


def random_batch(llm: LLM, num_prompts: int, input_len: int,
                 output_len: int) -> tuple[list[dict[str, list[int]]], SamplingParams]:
    prompts = random_prompts(random.Random(0), num_prompts, input_len, int(llm.engine.hf_config.vocab_size))
    return prompts, SamplingParams(temperature=0.0, max_tokens=output_len, ignore_eos=True)
