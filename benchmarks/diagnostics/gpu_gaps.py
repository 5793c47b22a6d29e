"""Is the device ever idle between kernels of an offline run? Starts the 8B dummy engine, runs
`num_prompts` random prompts of `input_len` tokens, and records device activity only (CUPTI
kernels, copies and memsets; no CPU ops, so the host runs almost as fast as without the
profiler) for `active` engine steps once `skip` steps have passed. Prints the window's span,
the time some kernel or copy ran, the idle rest, and the longest idle gaps with the activity
on either side of each.

    python3 benchmarks/diagnostics/gpu_gaps.py [num_prompts] [input_len] [skip] [active]
        [engine keyword=value ...]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from offline_setup import profile_steps
from torch.profiler import ProfilerActivity

DEVICE_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset")


def device_intervals(trace_path: Path) -> list[tuple[float, float, str]]:
    """(start us, end us, name) of every device activity in a Chrome trace, by start."""
    events = json.loads(trace_path.read_text())["traceEvents"]
    spans = [(float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0.0)), str(e.get("name", "")))
             for e in events if e.get("ph") == "X" and e.get("cat") in DEVICE_CATEGORIES]
    return sorted(spans)


def gaps_of(spans: list[tuple[float, float, str]]) -> tuple[float, float, list[tuple[float, str, str]]]:
    """(busy us, span us, [(gap us, activity before, activity after)]) over the union of spans."""
    busy = 0.0
    gaps = []
    current_start, current_end, last_name = spans[0]
    for start, end, name in spans[1:]:
        if start > current_end:
            busy += current_end - current_start
            gaps.append((start - current_end, last_name, name))
            current_start, current_end = start, end
        elif end > current_end:
            current_end = end
        if end >= current_end:
            last_name = name
    busy += current_end - current_start
    return busy, spans[-1][1] - spans[0][0], gaps


def main() -> None:
    numbers = [int(arg) for arg in sys.argv[1:5] if "=" not in arg]
    num_prompts, input_len, skip, active = numbers + [1000, 128, 24, 20][len(numbers):]
    trace = profile_steps(num_prompts, input_len, skip, active, [ProfilerActivity.CUDA])
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "trace.json"
        trace.export_chrome_trace(str(path))
        spans = device_intervals(path)
    busy_us, span_us, gaps = gaps_of(spans)
    idle_us = span_us - busy_us
    print(f"{num_prompts} x {input_len} in: {active} steps after {skip}: span {span_us / active / 1e3:.2f} ms a "
          f"step, device busy {busy_us / active / 1e3:.2f} ms, idle {idle_us / active / 1e3:.2f} ms "
          f"({idle_us / span_us:.1%}); {len(gaps)} gaps, {sum(1 for g in gaps if g[0] > 50)} over 50 us")
    for gap_us, before, after in sorted(gaps, key=lambda gap: -gap[0])[:15]:
        print(f"  {gap_us / 1e3:8.3f} ms  after {before[:60]!r}  before {after[:60]!r}")
    small = sum(gap_us for gap_us, _, _ in gaps if gap_us <= 50)
    print(f"  gaps of 50 us or less: {small / active / 1e3:.3f} ms a step")


if __name__ == "__main__":
    main()
