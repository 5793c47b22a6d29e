"""The limit measurements' arithmetic, and that they run on the CPU with small sizes."""

from __future__ import annotations

import pytest
import torch

from tenon.bench import gpu_limits
from tenon.bench.gpu_limits import (
    RateMeasurement,
    decode1_limit,
    measure_copy_bandwidth,
    measure_matmul_rate,
    measure_sustained_matmul_rate,
    time_op_s,
)

CPU = torch.device("cpu")


def test_rate_is_work_over_the_median_sample() -> None:
    measurement = RateMeasurement(work_per_sample=6.0e9, samples_s=(0.004, 0.002, 0.5, 0.003, 0.0025))
    assert measurement.median_s == 0.003
    assert measurement.rate_per_s == pytest.approx(2.0e12)


def test_time_op_runs_warmup_then_timed_calls() -> None:
    calls: list[int] = []
    samples_s = time_op_s(lambda: calls.append(1), CPU, num_warmup=2, num_repeats=5)
    assert len(calls) == 7 and len(samples_s) == 5 and all(sample >= 0.0 for sample in samples_s)
    with pytest.raises(ValueError, match="num_repeats must be at least 1"):
        time_op_s(lambda: None, CPU, num_warmup=0, num_repeats=0)


def test_copy_counts_bytes_read_and_written() -> None:
    measurement = measure_copy_bandwidth(CPU, size_bytes=1 << 20, num_warmup=1, num_repeats=4)
    assert measurement.work_per_sample == 2 * (1 << 20)
    assert len(measurement.samples_s) == 4 and min(measurement.samples_s) > 0.0
    with pytest.raises(ValueError, match="multiple of 4"):
        measure_copy_bandwidth(CPU, size_bytes=6)


def test_matmul_counts_two_n_cubed_operations() -> None:
    measurement = measure_matmul_rate(CPU, size=64, num_warmup=1, num_repeats=3)
    assert measurement.work_per_sample == 2.0 * 64**3
    assert len(measurement.samples_s) == 3 and min(measurement.samples_s) > 0.0


def test_sustained_matmul_counts_two_n_cubed_per_matmul_of_the_second_half() -> None:
    measurement = measure_sustained_matmul_rate(CPU, size=64, duration_s=0.05)
    num_timed = measurement.work_per_sample / (2.0 * 64**3)
    assert num_timed == int(num_timed) >= 1 and len(measurement.samples_s) == 1
    assert measurement.rate_per_s == measurement.work_per_sample / measurement.samples_s[0] > 0.0
    with pytest.raises(ValueError, match="duration_s must be positive, got 0"):
        measure_sustained_matmul_rate(CPU, size=64, duration_s=0)


@pytest.mark.parametrize(("one_matmul_s", "num_timed"), [(0.001, 25), (0.0045, 6)])
def test_sustained_matmul_times_the_second_half_of_duration_over_one_matmul(
        monkeypatch: pytest.MonkeyPatch, one_matmul_s: float, num_timed: int) -> None:
    # 0.05 s over one matmul's estimate: 50 matmuls, the last 25 timed; 11 (of 11.1), the last 6.
    estimates: list[int] = []

    def fixed_estimate(op: object, device: torch.device, *, num_warmup: int, num_repeats: int) -> list[float]:
        estimates.append(num_warmup)
        return [one_matmul_s * 2, one_matmul_s, one_matmul_s * 3][:num_repeats]

    monkeypatch.setattr(gpu_limits, "time_op_s", fixed_estimate)
    measurement = measure_sustained_matmul_rate(CPU, size=64, duration_s=0.05)
    assert estimates == [3]
    assert measurement.work_per_sample == 2.0 * 64**3 * num_timed


def test_decode1_limit_on_the_h100_anchor() -> None:
    # 3.0 TB/s over llama-3.1-8b's 15.01 GB: about 200 tok/s (BENCHMARKS.md).
    bandwidth = RateMeasurement(work_per_sample=2.0 * (2 << 30), samples_s=(2 * (2 << 30) / 3.0e12,) * 3)
    limit = decode1_limit(bandwidth, 15_009_857_536)
    assert limit["value"] == round(3.0e12 / 15_009_857_536, 2) == 199.87
    assert limit["copy_bandwidth_bytes_per_s"] == 3_000_000_000_000
    assert limit["bytes_per_step"] == 15_009_857_536
    assert "3.000 TB/s (2 GiB device copy" in limit["how"] and "median of 3" in limit["how"]
    assert "15.010 GB" in limit["how"]
