"""Where does a batched decode step's GPU time go? Starts the 8B dummy engine, runs
`num_prompts` random prompts of `input_len` tokens, and profiles `active` engine steps once
`skip` steps have passed (past the prefills: pure decode steps replaying a graph), then prints
kernel time per step by kind (`offline_trace.KINDS`) and the kernels that took longest.

    python3 benchmarks/diagnostics/decode_step_kernels.py [num_prompts] [input_len] [skip] [active]
        [engine keyword=value ...]
"""

from __future__ import annotations

import sys

from offline_setup import profile_steps
from offline_trace import kernel_time_by_kind
from torch.profiler import ProfilerActivity


def main() -> None:
    numbers = [int(arg) for arg in sys.argv[1:5] if "=" not in arg]
    num_prompts, input_len, skip, active = numbers + [200, 1000, 40, 20][len(numbers):]
    trace = profile_steps(num_prompts, input_len, skip, active, [ProfilerActivity.CPU, ProfilerActivity.CUDA])
    events = trace.key_averages()
    kernels, total_us, by_kind = kernel_time_by_kind(events)
    print(f"{num_prompts} x {input_len} in: {active} decode steps after {skip}: kernels "
          f"{total_us / active / 1e3:.2f} ms a step")
    for kind, kind_us in sorted(by_kind.items(), key=lambda item: -item[1]):
        print(f"  {kind:<20} {kind_us / active / 1e3:7.3f} ms a step  {kind_us / total_us:6.1%}")
    for event in sorted(kernels, key=lambda e: -e.self_device_time_total)[:16]:
        print(f"  {event.self_device_time_total / active / 1e3:7.3f} ms a step  {event.count // active:4d} "
              f"a step  {event.key[:90]}")


if __name__ == "__main__":
    main()
