"""Step by step, where does an offline run's time go? Wraps the engine core's step and records
each step's wall time, its tokens and requests, and whether it replayed a decode graph; wraps
Triton's compiler to log every kernel compiled while requests run. Runs the same batch twice
(cold, then warm) and prints per-kind totals for both.

    python3 benchmarks/diagnostics/step_timeline.py NUM_PROMPTS INPUT_LEN OUTPUT_LEN
"""

from __future__ import annotations

import collections
import random
import sys
import time
from typing import Any

import triton.compiler.compiler as triton_compiler

from tenon import LLM, SamplingParams


def main() -> None:
    num_prompts, input_len, output_len = (int(arg) for arg in sys.argv[1:4])
    llm = LLM("benchmarks/configs/llama-3.1-8b", load_format="dummy", dtype="bfloat16",
              max_model_len=4096, log_startup=False)
    core = llm.engine.client.core
    runner = core.executor.runner
    steps: list[tuple[float, int, int, bool]] = []
    compiles: list[tuple[str, float]] = []
    original_step = core.step

    def step() -> Any:
        replays = runner.graphs.num_replays if runner.graphs is not None else 0
        start = time.perf_counter()
        outputs = original_step()
        wall_ms = (time.perf_counter() - start) * 1e3
        graph = runner.graphs is not None and runner.graphs.num_replays > replays
        steps.append((wall_ms, last_tokens[0], last_tokens[1], graph))
        return outputs

    last_tokens = [0, 0]
    original_schedule = core.scheduler.schedule

    def schedule() -> Any:
        output = original_schedule()
        last_tokens[0] = output.total_num_scheduled_tokens
        last_tokens[1] = len(output.num_scheduled_tokens)
        return output

    original_compile = triton_compiler.compile

    def compile_logged(src: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = original_compile(src, *args, **kwargs)
        compiles.append((getattr(src, "name", str(src))[:60], time.perf_counter() - start))
        return result

    core.step = step
    core.scheduler.schedule = schedule
    triton_compiler.compile = compile_logged
    rng = random.Random(0)
    prompts = [{"prompt_token_ids": [rng.randrange(10, 120000) for _ in range(input_len)]}
               for _ in range(num_prompts)]
    params = SamplingParams(temperature=0.0, max_tokens=output_len, ignore_eos=True)
    for label in ("cold", "warm"):
        steps.clear()
        compiles.clear()
        llm.reset_prefix_cache()
        start = time.perf_counter()
        llm.generate(prompts, params, use_tqdm=False)
        wall_s = time.perf_counter() - start
        print(f"== {label}: {num_prompts} x {input_len}/{output_len}: {wall_s:.2f} s, "
              f"{num_prompts * output_len / wall_s:.0f} output tok/s, {len(steps)} steps")
        kinds: dict[str, list[float]] = collections.defaultdict(list)
        for wall_ms, tokens, reqs, graph in steps:
            kind = "graph decode" if graph else ("eager decode" if tokens == reqs else "eager mixed")
            bucket = 1 << max(0, (reqs - 1).bit_length())
            kinds[f"{kind:13s} reqs<={bucket:4d}"].append(wall_ms)
        for kind, walls in sorted(kinds.items()):
            print(f"  {kind}: {len(walls):5d} steps, {sum(walls) / 1e3:7.2f} s, "
                  f"mean {sum(walls) / len(walls):7.2f} ms, max {max(walls):7.1f} ms")
        mixed = [(w, t, r) for w, t, r, g in steps if t != r][:12]
        print("  first mixed steps (ms, tokens, reqs):", [(round(w, 1), t, r) for w, t, r in mixed])
        print(f"  triton compiles: {len(compiles)}, {sum(s for _, s in compiles):.2f} s:",
              [(name, round(s, 2)) for name, s in compiles[:10]])
    llm.shutdown()


if __name__ == "__main__":
    main()
