"""One benchmark result as the JSON record BENCHMARKS.md asks for."""

from __future__ import annotations

import platform
from datetime import date
from typing import Any

import torch


def card_name() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def versions() -> dict[str, str]:
    import transformers

    from tenon import __version__

    return {
        "tenon": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def result_record(
    *, workload: str, model: str, value: float, unit: str, baseline: dict[str, Any],
    limit: dict[str, Any] | None, extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "workload": workload,
        "model": model,
        "card": card_name(),
        "versions": versions(),
        "value": round(value, 3),
        "unit": unit,
        "baseline": baseline,
        "limit": limit,
        "fraction_of_limit": round(value / limit["value"], 4) if limit else None,
        "date": date.today().isoformat(),
        **(extra or {}),
    }


def copy_bandwidth_bytes_per_s(device: torch.device, size_bytes: int = 1 << 30, repeats: int = 5) -> float:
    """Device-to-device copy bandwidth, counting bytes read plus written (BENCHMARKS.md)."""
    import time

    source = torch.empty(size_bytes // 4, dtype=torch.float32, device=device).uniform_()
    target = torch.empty_like(source)
    target.copy_(source)
    best_s = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        target.copy_(source)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best_s = min(best_s, time.perf_counter() - start)
    return 2 * source.numel() * 4 / best_s
