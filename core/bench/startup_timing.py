"""Engine start-up time, split into building the weights and everything else.

The engine builder times its phases in a `StartupLog`; the "model" phase allocates the model and
fills its weights (random ones with `--load-format dummy`), so it is reported as the weights'
time. Wall time to ready is measured around the whole `LLM(...)` call and also holds what no
phase covers (imports on a cold start, argument checks). The first start in a process is cold
(imports, device context, kernel compilation); later ones are warm.
"""

from __future__ import annotations

import time
from typing import Any

import attrs

from tenon.bench.device_memory import free_device_memory
from tenon.startup.phases import StartupLog

WEIGHTS_PHASE = "model"


@attrs.frozen(kw_only=True)
class StartupTiming:
    wall_s: float  # the LLM(...) call, end to end
    phases_s: dict[str, float]
    weights_s: float
    other_phases_s: float  # every phase but the weights

    @property
    def outside_phases_s(self) -> float:
        return self.wall_s - self.weights_s - self.other_phases_s

    def as_dict(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "outside_phases_s": self.outside_phases_s}


def startup_timing(log: StartupLog, wall_s: float) -> StartupTiming:
    weights_s = log.durations_s.get(WEIGHTS_PHASE, 0.0)
    return StartupTiming(wall_s=wall_s, phases_s=dict(log.durations_s), weights_s=weights_s,
                         other_phases_s=log.total_s - weights_s)


def start_timed(engine_args: dict[str, Any]) -> tuple[Any, StartupTiming]:
    """Start an `LLM` and time it; the caller shuts it down."""
    start_s = time.perf_counter()
    from tenon.frontend.llm import LLM

    llm = LLM(log_startup=False, **engine_args)
    wall_s = time.perf_counter() - start_s
    return llm, startup_timing(llm.engine.startup, wall_s)


def time_startups(engine_args: dict[str, Any], num_starts: int) -> list[StartupTiming]:
    """Start and stop the engine `num_starts` times in this process: the first cold, then warm."""
    if num_starts < 1:
        raise ValueError(f"--num-starts must be at least 1, got {num_starts}")
    timings = []
    for _ in range(num_starts):
        llm, timing = start_timed(engine_args)
        llm.shutdown()
        del llm
        free_device_memory()
        timings.append(timing)
    return timings
