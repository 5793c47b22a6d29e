"""Step by step, where does an offline run's time go? Wraps the engine core's step and records
each step's wall time, how long the host waited in it for the device (the step's one
synchronisation), its tokens and requests, and whether it replayed a decode graph. Runs the same
batch twice (cold, then warm) and prints per-kind totals for both: a step much slower cold than
warm is a kernel compiled while requests run; a kind whose steps hardly wait is host-bound (with
asynchronous scheduling the device runs the step launched before while the host works).

    python3 benchmarks/diagnostics/step_timeline.py [num_prompts] [input_len] [output_len]
        [engine keyword=value ...]   e.g. max_num_seqs=1024 max_num_batched_tokens=16384
"""

from __future__ import annotations

import collections
import time
from typing import Any

from offline_setup import dummy_llm, engine_kwargs_from_argv, random_batch, workload_from_argv

from tenon.worker.launched_step import LaunchedStep


class _TimedEvent:
    """An event whose synchronize() adds the seconds it blocked to `waited`."""

    def __init__(self, event: Any, waited: list[float]) -> None:
        self.event, self.waited = event, waited

    def synchronize(self) -> None:
        start = time.perf_counter()
        self.event.synchronize()
        self.waited[0] += time.perf_counter() - start


def main() -> None:
    num_prompts, input_len, output_len = workload_from_argv((512, 128, 128))
    llm = dummy_llm(**engine_kwargs_from_argv())
    core = llm.engine.client.core
    runner = core.executor.runner
    steps: list[tuple[float, float, int, int, bool]] = []
    original_step = core.step
    waited = [0.0]
    original_result = LaunchedStep.result

    def result(self: LaunchedStep) -> Any:
        if self.copied is not None and not isinstance(self.copied, _TimedEvent):
            self.copied = _TimedEvent(self.copied, waited)
        return original_result(self)

    LaunchedStep.result = result  # type: ignore[method-assign]

    def step() -> Any:
        replays = runner.graphs.num_replays if runner.graphs is not None else 0
        waited[0] = 0.0
        start = time.perf_counter()
        outputs = original_step()
        wall_ms = (time.perf_counter() - start) * 1e3
        graph = runner.graphs is not None and runner.graphs.num_replays > replays
        steps.append((wall_ms, waited[0] * 1e3, last_tokens[0], last_tokens[1], graph))
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
        kinds: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
        for wall_ms, wait_ms, tokens, reqs, graph in steps:
            kind = "graph decode" if graph else ("eager decode" if tokens == reqs else "eager mixed")
            bucket = 1 << max(0, (reqs - 1).bit_length())
            kinds[f"{kind:13s} reqs<={bucket:4d}"].append((wall_ms, wait_ms))
        total_wall_s = sum(step[0] for step in steps) / 1e3
        total_wait_s = sum(step[1] for step in steps) / 1e3
        print(f"  steps {total_wall_s:.2f} s, of which waiting for the device {total_wait_s:.2f} s")
        for kind, rows in sorted(kinds.items()):
            walls = [wall for wall, _ in rows]
            host_ms = (sum(walls) - sum(wait for _, wait in rows)) / len(rows)
            print(f"  {kind}: {len(walls):5d} steps, {sum(walls) / 1e3:7.2f} s, "
                  f"mean {sum(walls) / len(walls):7.2f} ms (host {host_ms:6.2f}), max {max(walls):7.1f} ms")
        mixed = [(w, t, r) for w, _, t, r, g in steps if t != r][:12]
        print("  first mixed steps (ms, tokens, reqs):", [(round(w, 1), t, r) for w, t, r in mixed])
        slowest = sorted(range(len(steps)), key=lambda index: -steps[index][0])[:12]
        print("  slowest steps (index, ms, host ms, tokens, reqs, graph):",
              [(index, round(steps[index][0], 1), round(steps[index][0] - steps[index][1], 1), steps[index][2],
                steps[index][3], steps[index][4]) for index in sorted(slowest)])
    llm.shutdown()


if __name__ == "__main__":
    main()
