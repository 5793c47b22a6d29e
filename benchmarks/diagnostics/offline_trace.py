"""Where does the GPU time of an offline batch go? Runs random prompts (ignore_eos) once to warm
up, then again under the torch profiler, and prints the wall time, the summed device-kernel time
(how busy the GPU was), that time by kind of kernel (matmul, attention, norms, ...), and the
kernels and host calls that took longest.

    python3 benchmarks/diagnostics/offline_trace.py [num_prompts] [input_len] [output_len]
        [engine keyword=value ...]
"""

from __future__ import annotations

import collections
import re
import time
from typing import Any

import torch
from offline_setup import dummy_llm, engine_kwargs_from_argv, random_batch, workload_from_argv
from torch.profiler import ProfilerActivity, profile

# Kernel name patterns, first match wins: (kind, regex).
KINDS = (
    ("gemv (ours)", r"_gemv|_split_sum"),
    ("matmul (cuBLAS)", r"gemm|nvjet|cutlass|sm90_|xmma|cublas|Kernel2"),
    ("attention decode", r"_decode_kernel|_merge"),
    ("attention prefill", r"_prefill_kernel|flash|fmha|attention"),
    ("kv write", r"_write_kv"),
    ("rms norm", r"rms_norm"),
    ("silu and mul", r"silu"),
    ("rotary", r"rotary"),
    ("sampling", r"argmax|topk|sort|softmax|multinomial|exponential|max_"),
    ("copy / fill", r"[Mm]emcpy|[Mm]emset|copy|fill"),
    ("index / gather", r"index|gather|scatter|embedding"),
)


def kind_of(name: str) -> str:
    return next((kind for kind, pattern in KINDS if re.search(pattern, name)), "other")


def kernel_time_by_kind(events: Any) -> tuple[list[Any], float, dict[str, float]]:
    """A profile's kernels and copies, their summed device microseconds, and that sum by kind.
    CPU-side ops (aten::mm) and the profiler's step ranges also report the device time of what
    they span, which would count it twice."""
    kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA
               and e.self_device_time_total > 0 and not e.key.startswith("ProfilerStep")]
    by_kind: dict[str, float] = collections.defaultdict(float)
    for event in kernels:
        by_kind[kind_of(event.key)] += event.self_device_time_total
    return kernels, sum(e.self_device_time_total for e in kernels), dict(by_kind)


def main() -> None:
    num_prompts, input_len, output_len = workload_from_argv((256, 128, 128))
    llm = dummy_llm(**engine_kwargs_from_argv())
    prompts, params = random_batch(llm, num_prompts, input_len, output_len)
    start = time.perf_counter()
    llm.generate(prompts, params, use_tqdm=False)
    plain_s = time.perf_counter() - start
    print(f"{num_prompts} x {input_len} in / {output_len} out: {plain_s:.3f} s without the "
          f"profiler ({num_prompts * output_len / plain_s:.0f} output tok/s)")
    llm.reset_prefix_cache()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as trace:
        start = time.perf_counter()
        llm.generate(prompts, params, use_tqdm=False)
        torch.cuda.synchronize()
        traced_s = time.perf_counter() - start
    events = trace.key_averages()
    _, device_us, by_kind = kernel_time_by_kind(events)
    print(f"under the profiler: {traced_s:.3f} s wall, kernels {device_us / 1e6:.3f} s "
          f"(GPU busy {device_us / 1e6 / traced_s:.0%})")
    for kind, total_us in sorted(by_kind.items(), key=lambda item: -item[1]):
        print(f"  {kind:<20} {total_us / 1e6:8.3f} s  {total_us / device_us:6.1%} of kernel time")
    print(events.table(sort_by="self_cuda_time_total", row_limit=25, max_name_column_width=70))
    print(events.table(sort_by="self_cpu_time_total", row_limit=20, max_name_column_width=70))
    llm.shutdown()


if __name__ == "__main__":
    main()
