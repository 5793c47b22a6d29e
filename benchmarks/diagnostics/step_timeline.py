"""Step by step, where does an offline run's time go? Wraps the engine core's step and records
each step's wall time, its tokens and requests, and whether it replayed a decode graph. Runs the
same batch twice (cold, then warm) and prints per-kind totals for both: a step much slower cold
than warm is a kernel compiled while requests run.

    python3 benchmarks/diagnostics/step_timeline.py [num_prompts] [input_len] [output_len]
"""

from __future__ import annotations

import collections
import time
from typing import Any

from offline_setup import dummy_llm, random_batch, workload_from_argv


def main() -> None:
    num_prompts, input_len, output_len = workload_from_argv((512, 128, 128))
    llm = dummy_llm()
    core = llm.engine.client.core
    runner = core.executor.runner
    steps: list[tuple[float, int, int, bool]] = []
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

    core.step = step
    core.scheduler.schedule = schedule
    prompts, params = random_batch(llm, num_prompts, input_len, output_len)
    for label in ("cold", "warm"):
        steps.clear()
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
    llm.shutdown()


if __name__ == "__main__":
    main()
