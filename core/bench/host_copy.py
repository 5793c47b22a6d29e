"""Pinned host-to-device copy rate, the floor under loading KV blocks from the CPU tier.

Measured in the benchmark's own process, beside the engine, two ways over the same bytes:
one copy of the whole buffer, and one copy per KV block (as the CPU tier issues them), so the
cost of many mid-sized copies is visible apart from the link's rate. Both are asynchronous
copies from page-locked memory, timed with CUDA events (`gpu_limits.time_op_s`, median sample).
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from tenon.bench.gpu_limits import RateMeasurement, time_op_s

NO_CUDA_NOTE = "no CUDA device: the pinned host-to-device copy was not measured"


@attrs.frozen(kw_only=True)
class HostCopyRates:
    num_bytes: int
    chunk_bytes: int
    whole: RateMeasurement  # one copy of num_bytes
    chunked: RateMeasurement  # num_bytes // chunk_bytes copies of chunk_bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "bytes": self.num_bytes,
            "one_copy_bytes_per_s": self.whole.rate_per_s,
            "block_copies_bytes_per_s": self.chunked.rate_per_s,
            "block_bytes": self.chunk_bytes,
            "one_copy_samples_s": list(self.whole.samples_s),
            "block_copies_samples_s": list(self.chunked.samples_s),
        }


def measure_pinned_host_to_device(
    num_bytes: int, chunk_bytes: int, device: torch.device, *, num_warmup: int = 2, num_repeats: int = 5
) -> HostCopyRates:
    """Copy `num_bytes` (a multiple of `chunk_bytes`) from pinned host memory to `device`."""
    if device.type != "cuda":
        raise ValueError(f"the pinned host-to-device copy needs a CUDA device, got {device}")
    if chunk_bytes < 1 or num_bytes < chunk_bytes or num_bytes % chunk_bytes:
        raise ValueError(f"num_bytes ({num_bytes}) must be a positive multiple of chunk_bytes ({chunk_bytes})")
    whole, chunked = _time_copies(num_bytes, chunk_bytes, device, num_warmup=num_warmup,
                                  num_repeats=num_repeats)
    torch.cuda.empty_cache()  # the buffers are gone: hand their device memory back
    return HostCopyRates(num_bytes=num_bytes, chunk_bytes=chunk_bytes, whole=whole, chunked=chunked)


def _time_copies(num_bytes: int, chunk_bytes: int, device: torch.device, *, num_warmup: int,
                 num_repeats: int) -> tuple[RateMeasurement, RateMeasurement]:
    # host: [num_bytes] page-locked; target: [num_bytes] on the device
    host = torch.empty(num_bytes, dtype=torch.uint8, pin_memory=True)
    target = torch.empty(num_bytes, dtype=torch.uint8, device=device)
    host_chunks = host.view(-1, chunk_bytes)  # [num_chunks, chunk_bytes]
    target_chunks = target.view(-1, chunk_bytes)

    def one_copy() -> None:
        target.copy_(host, non_blocking=True)

    def chunk_copies() -> None:
        for index in range(host_chunks.shape[0]):
            target_chunks[index].copy_(host_chunks[index], non_blocking=True)

    options = {"num_warmup": num_warmup, "num_repeats": num_repeats}
    whole = RateMeasurement(work_per_sample=float(num_bytes),
                            samples_s=tuple(time_op_s(one_copy, device, **options)))
    chunked = RateMeasurement(work_per_sample=float(num_bytes),
                              samples_s=tuple(time_op_s(chunk_copies, device, **options)))
    return whole, chunked
