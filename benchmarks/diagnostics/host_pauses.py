"""Where does the host spend a slow engine step? Starts the 8B dummy engine (or `model=DIR`),
runs `num_prompts` random prompts of `input_len` in / `output_len` out, and times every step's
host phases: scheduling, launching (input preparation and the kernel or graph launches), waiting
for the previous step's tokens, the scheduler's update, the time outside `EngineCore.step` (the
frontend's output processing), and the garbage collections that ran inside each. Prints the
median step and every step slower than twice the median, with its phases and collections.

    python3 benchmarks/diagnostics/host_pauses.py [num_prompts] [input_len] [output_len]
        [engine keyword=value ...]
"""

from __future__ import annotations

import collections
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

from offline_setup import dummy_llm, engine_kwargs_from_argv, random_batch, workload_from_argv

PHASES = ("schedule", "launch", "wait", "update", "outside")


class StepClock:
    """Per-step phase times (ms) and collections (generation, ms)."""

    def __init__(self) -> None:
        self.phases: list[dict[str, float]] = []
        self.collections: list[list[tuple[int, float]]] = []
        self._gc_start_s = 0.0
        self._last_step_end_s: float | None = None

    def begin_step(self) -> None:
        now_s = time.perf_counter()
        phases: dict[str, float] = collections.defaultdict(float)
        if self._last_step_end_s is not None:
            phases["outside"] = (now_s - self._last_step_end_s) * 1e3
        self.phases.append(phases)
        self.collections.append([])

    def end_step(self) -> None:
        self._last_step_end_s = time.perf_counter()

    def timed(self, phase: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start_s = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                if self.phases:
                    self.phases[-1][phase] += (time.perf_counter() - start_s) * 1e3
        return wrapper

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_start_s = time.perf_counter()
        elif self.collections:
            self.collections[-1].append((info["generation"], (time.perf_counter() - self._gc_start_s) * 1e3))


def main() -> None:
    num_prompts, input_len, output_len = workload_from_argv((1000, 128, 64))
    llm = dummy_llm(**engine_kwargs_from_argv())
    prompts, params = random_batch(llm, num_prompts, input_len, output_len)
    llm.generate(prompts[:4], params, use_tqdm=False)  # warm
    core = llm.engine.client.core
    clock = StepClock()
    original_step = core.step

    def step() -> Any:
        clock.begin_step()
        try:
            return original_step()
        finally:
            clock.end_step()

    core.step = step
    core.scheduler.schedule = clock.timed("schedule", core.scheduler.schedule)
    core.scheduler.update_from_output = clock.timed("update", core.scheduler.update_from_output)
    original_launch = core.executor.launch

    def launch(scheduler_output: Any) -> Any:
        launched = clock.timed("launch", original_launch)(scheduler_output)
        launched.result = clock.timed("wait", launched.result)
        return launched

    core.executor.launch = launch
    gc.callbacks.append(clock.on_gc)
    start_s = time.perf_counter()
    llm.generate(prompts, params, use_tqdm=False)
    wall_s = time.perf_counter() - start_s
    gc.callbacks.remove(clock.on_gc)
    llm.shutdown()

    totals = [sum(phases.values()) for phases in clock.phases]
    median_ms = statistics.median(totals)
    print(f"{num_prompts} x {input_len} in / {output_len} out: {wall_s:.2f} s, {len(totals)} steps, "
          f"median step {median_ms:.2f} ms, {num_prompts * output_len / wall_s:.0f} output tok/s")
    for phase in PHASES:
        values = [phases.get(phase, 0.0) for phases in clock.phases]
        print(f"  {phase:<9} median {statistics.median(values):7.2f} ms  max {max(values):7.2f} ms  "
              f"total {sum(values) / 1e3:6.2f} s")
    by_generation: dict[int, list[float]] = collections.defaultdict(list)
    for step_collections in clock.collections:
        for generation, duration_ms in step_collections:
            by_generation[generation].append(duration_ms)
    for generation, durations in sorted(by_generation.items()):
        print(f"  gc gen{generation}: {len(durations)} collections, total {sum(durations):.0f} ms, "
              f"max {max(durations):.1f} ms")
    print("steps slower than twice the median (index, ms, phases, collections over 1 ms):")
    for index, total_ms in enumerate(totals):
        if total_ms > 2 * median_ms:
            phases = " ".join(f"{phase} {clock.phases[index].get(phase, 0.0):.1f}" for phase in PHASES)
            slow_collections = [(g, round(ms, 1)) for g, ms in clock.collections[index] if ms > 1.0]
            print(f"  {index:5d} {total_ms:8.1f}  {phases}  {slow_collections}")


if __name__ == "__main__":
    main()
