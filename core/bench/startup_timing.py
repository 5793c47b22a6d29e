"""Engine start-up time, split into building the weights and everything else.

The engine builder times its phases in a `StartupLog`; the "model" phase allocates the model and
fills its weights (random ones with `--load-format dummy`), so it is reported as the weights'
time. Wall time to ready is measured around the whole `LLM(...)` call and also holds what no
phase covers (imports on a cold start, argument checks). The first start in a process is cold
(imports, device context, kernel compilation); later ones are warm. What an operator waits for
is the first start measured from the process's creation (interpreter, `import torch`, then the
engine): `process_to_ready_s`.
"""

from __future__ import annotations

import os
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
    # From the process's creation to ready (first start in a process on Linux); else None.
    process_to_ready_s: float | None = None

    @property
    def outside_phases_s(self) -> float:
        return self.wall_s - self.weights_s - self.other_phases_s

    def as_dict(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "outside_phases_s": self.outside_phases_s}


def startup_timing(log: StartupLog, wall_s: float, process_to_ready_s: float | None = None) -> StartupTiming:
    weights_s = log.durations_s.get(WEIGHTS_PHASE, 0.0)
    return StartupTiming(wall_s=wall_s, phases_s=dict(log.durations_s), weights_s=weights_s,
                         other_phases_s=log.total_s - weights_s, process_to_ready_s=process_to_ready_s)


def seconds_since_process_start() -> float | None:
    """Seconds since this process was created, from /proc (Linux; 10 ms resolution)."""
    try:
        with open("/proc/self/stat") as stat_file:
            fields = stat_file.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as uptime_file:
            uptime_s = float(uptime_file.read().split()[0])
        start_ticks = int(fields[19])  # field 22 of proc(5), "starttime", counted after the name
        return uptime_s - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def start_timed(engine_args: dict[str, Any], *, first_in_process: bool = False) -> tuple[Any, StartupTiming]:
    """Start an `LLM` and time it; the caller shuts it down."""
    start_s = time.perf_counter()
    from tenon.frontend.llm import LLM

    llm = LLM(log_startup=False, **engine_args)
    wall_s = time.perf_counter() - start_s
    process_s = seconds_since_process_start() if first_in_process else None
    return llm, startup_timing(llm.engine.startup, wall_s, process_s)


def time_startups(engine_args: dict[str, Any], num_starts: int) -> list[StartupTiming]:
    """Start and stop the engine `num_starts` times in this process: the first cold, then warm."""
    if num_starts < 1:
        raise ValueError(f"--num-starts must be at least 1, got {num_starts}")
    timings = []
    for index in range(num_starts):
        llm, timing = start_timed(engine_args, first_in_process=index == 0)
        llm.shutdown()
        del llm
        free_device_memory()
        timings.append(timing)
    return timings
