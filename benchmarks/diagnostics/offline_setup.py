"""What the offline diagnostics share: the 8B dummy engine, a batch of random prompts
(`tenon.bench.latency.random_prompts`) with greedy, EOS-ignoring parameters, and a profile of
a window of engine steps."""

from __future__ import annotations

import random
import sys
from collections.abc import Sequence
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, schedule

from tenon import LLM, SamplingParams
from tenon.bench.latency import random_prompts

MODEL = "benchmarks/configs/llama-3.1-8b"


def workload_from_argv(defaults: tuple[int, int, int]) -> tuple[int, int, int]:
    """(num_prompts, input_len, output_len) from the command line, each defaulting in order."""
    given = [int(arg) for arg in sys.argv[1:4] if "=" not in arg]
    return tuple(given + list(defaults[len(given):]))  # type: ignore[return-value]


EngineValue = int | str | list[int]


def engine_kwargs_from_argv() -> dict[str, EngineValue]:
    """Engine keywords given as key=value after the workload's numbers: ints where they parse,
    space-separated ints as a list (cuda_graph_sizes="1 2 4 8"), else strings."""
    kwargs: dict[str, EngineValue] = {}
    for arg in sys.argv[1:]:
        if "=" in arg:
            key, value = arg.split("=", 1)
            parts = value.split()
            if len(parts) > 1 and all(part.isdigit() for part in parts):
                kwargs[key] = [int(part) for part in parts]
            else:
                kwargs[key] = int(value) if value.isdigit() else value
    return kwargs


def dummy_llm(**engine_kwargs: EngineValue) -> LLM:
    """The 8B dummy engine; keywords override its defaults (model=DIR runs another model)."""
    kwargs: dict[str, EngineValue] = {"model": MODEL, "load_format": "dummy", "dtype": "bfloat16",
                                      "max_model_len": 4096}
    kwargs.update(engine_kwargs)
    return LLM(log_startup=False, **kwargs)


def random_batch(llm: LLM, num_prompts: int, input_len: int,
                 output_len: int) -> tuple[list[dict[str, list[int]]], SamplingParams]:
    prompts = random_prompts(random.Random(0), num_prompts, input_len, int(llm.engine.hf_config.vocab_size))
    return prompts, SamplingParams(temperature=0.0, max_tokens=output_len, ignore_eos=True)


def profile_steps(num_prompts: int, input_len: int, skip: int, active: int,
                  activities: Sequence[ProfilerActivity]) -> profile:
    """Start the engine (keywords from the command line), run `num_prompts` random prompts of
    `input_len` tokens and return the profile of `active` engine steps after `skip` (past the
    prefills with enough prompts: pure decode steps)."""
    llm = dummy_llm(**engine_kwargs_from_argv())
    prompts, params = random_batch(llm, num_prompts, input_len, skip + active + 8)
    llm.generate(prompts[:4], params, use_tqdm=False)  # warm
    core = llm.engine.client.core
    original_step = core.step
    with profile(activities=list(activities),
                 schedule=schedule(wait=skip, warmup=0, active=active, repeat=1)) as trace:

        def step() -> Any:
            outputs = original_step()
            trace.step()
            return outputs

        core.step = step
        llm.generate(prompts, params, use_tqdm=False)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    core.step = original_step
    llm.shutdown()
    return trace
