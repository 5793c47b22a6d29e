"""The card's physical limits, measured in the same call as the benchmark (BENCHMARKS.md).

Copy bandwidth: a device-to-device copy of a 2 GiB buffer, counting bytes read plus written.
Matmul rate: one large square bf16 matmul, 2 * n^3 floating-point operations. Each is timed
with CUDA events (wall clock on the CPU) after warm-up, and the median sample counts, so one
preempted run on a shared machine does not move the number.

That matmul rate is a burst rate: a power-capped card lowers its clocks once it has been busy
for a while (an H200 held 0.86 of it over 4 s, `benchmarks/diagnostics/matmul_sustained.py`).
The sustained matmul rate is the same matmul back to back for a couple of seconds, timed over
the second half only, so the clocks have settled before timing starts.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import attrs
import torch

COPY_SIZE_BYTES = 2 << 30
MATMUL_SIZE = 8192
NUM_WARMUP = 3
NUM_REPEATS = 10
SUSTAIN_S = 2.0


@attrs.frozen(kw_only=True)
class RateMeasurement:
    """The same work done once per sample; the rate is that work over the median sample."""

    work_per_sample: float  # bytes moved, or floating-point operations
    samples_s: tuple[float, ...]

    @property
    def median_s(self) -> float:
        return statistics.median(self.samples_s)

    @property
    def rate_per_s(self) -> float:
        return self.work_per_sample / self.median_s


def time_op_s(op: Callable[[], Any], device: torch.device, *, num_warmup: int, num_repeats: int) -> list[float]:
    """Seconds per call of `op`, `num_repeats` samples after `num_warmup` untimed calls."""
    if num_repeats < 1:
        raise ValueError(f"num_repeats must be at least 1, got {num_repeats}")
    for _ in range(num_warmup):
        op()
    samples_s = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for _ in range(num_repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            op()
            end.record()
            end.synchronize()
            samples_s.append(start.elapsed_time(end) / 1000.0)
        return samples_s
    for _ in range(num_repeats):
        start_s = time.perf_counter()
        op()
        samples_s.append(time.perf_counter() - start_s)
    return samples_s


def measure_copy_bandwidth(device: torch.device, *, size_bytes: int = COPY_SIZE_BYTES,
                           num_warmup: int = NUM_WARMUP, num_repeats: int = NUM_REPEATS) -> RateMeasurement:
    """Device-to-device copy of `size_bytes`; the rate is bytes read plus written per second."""
    if size_bytes < 4 or size_bytes % 4:
        raise ValueError(f"size_bytes must be a positive multiple of 4, got {size_bytes}")
    samples_s = _time_copy(device, size_bytes, num_warmup=num_warmup, num_repeats=num_repeats)
    _release(device)
    return RateMeasurement(work_per_sample=2.0 * size_bytes, samples_s=tuple(samples_s))


def measure_matmul_rate(device: torch.device, *, size: int = MATMUL_SIZE, dtype: torch.dtype = torch.bfloat16,
                        num_warmup: int = NUM_WARMUP, num_repeats: int = NUM_REPEATS) -> RateMeasurement:
    """`[size, size] @ [size, size]` in `dtype`; the rate is floating-point operations per second."""
    samples_s = _time_matmul(device, size, dtype, num_warmup=num_warmup, num_repeats=num_repeats)
    _release(device)
    return RateMeasurement(work_per_sample=2.0 * size**3, samples_s=tuple(samples_s))


def measure_sustained_matmul_rate(device: torch.device, *, size: int = MATMUL_SIZE, duration_s: float = SUSTAIN_S,
                                  dtype: torch.dtype = torch.bfloat16) -> RateMeasurement:
    """`[size, size] @ [size, size]` back to back for about `duration_s`, timed over the second
    half; one sample, whose work is 2 * size^3 per matmul of that half."""
    if duration_s <= 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    num_timed, elapsed_s = time_sustained_s(_matmul_op(device, size, dtype), device, duration_s=duration_s)
    _release(device)
    return RateMeasurement(work_per_sample=2.0 * size**3 * num_timed, samples_s=(elapsed_s,))


def _time_copy(device: torch.device, size_bytes: int, *, num_warmup: int, num_repeats: int) -> list[float]:
    # source, target: [size_bytes / 4] float32; freed when this returns
    source = torch.ones(size_bytes // 4, dtype=torch.float32, device=device)
    target = torch.empty_like(source)
    return time_op_s(lambda: target.copy_(source), device, num_warmup=num_warmup, num_repeats=num_repeats)


def _matmul_op(device: torch.device, size: int, dtype: torch.dtype) -> Callable[[], Any]:
    generator = torch.Generator(device=device).manual_seed(0)
    # left, right, product: [size, size]; freed when the returned op is
    left = torch.rand(size, size, dtype=dtype, device=device, generator=generator)
    right = torch.rand(size, size, dtype=dtype, device=device, generator=generator)
    product = torch.empty_like(left)
    return lambda: torch.matmul(left, right, out=product)


def _time_matmul(device: torch.device, size: int, dtype: torch.dtype, *, num_warmup: int,
                 num_repeats: int) -> list[float]:
    return time_op_s(_matmul_op(device, size, dtype), device, num_warmup=num_warmup, num_repeats=num_repeats)


def time_sustained_s(op: Callable[[], Any], device: torch.device, *, duration_s: float) -> tuple[int, float]:
    """Run `op` back to back for about `duration_s`; (calls in the second half, their seconds).
    On CUDA the launches outrun the device and the host blocks once the launch queue is full;
    the events time the device, not the host."""
    # The fastest of a few burst samples: at worst the run lasts longer than asked, never shorter.
    one_s = min(time_op_s(op, device, num_warmup=NUM_WARMUP, num_repeats=NUM_WARMUP))
    num_calls = max(2, round(duration_s / max(one_s, 1e-9)))
    half = num_calls // 2
    if device.type == "cuda":
        middle, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        for index in range(num_calls):
            if index == half:
                middle.record()
            op()
        end.record()
        end.synchronize()
        return num_calls - half, middle.elapsed_time(end) / 1000.0
    for _ in range(half):
        op()
    start_s = time.perf_counter()
    for _ in range(num_calls - half):
        op()
    return num_calls - half, time.perf_counter() - start_s


def decode1_limit(bandwidth: RateMeasurement, bytes_per_step: int) -> dict[str, Any]:
    """The decode-1 ceiling: one token per pass over the weights a step must read."""
    copy_size_gib = bandwidth.work_per_sample / 2 / 2**30
    return {
        "value": round(bandwidth.rate_per_s / bytes_per_step, 2),
        "unit": "output tokens/s",
        "how": f"copy bandwidth {bandwidth.rate_per_s / 1e12:.3f} TB/s ({copy_size_gib:.3g} GiB device copy, "
               f"bytes read+written, median of {len(bandwidth.samples_s)}) / {bytes_per_step / 1e9:.3f} GB "
               f"of weights read per decode step",
        "copy_bandwidth_bytes_per_s": round(bandwidth.rate_per_s),
        "bytes_per_step": bytes_per_step,
    }


def _release(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
