"""Launch sizing shared by the kernels: how many warps a block of elements wants.

Every thread should move whole 16-byte vectors (8 bf16/fp16 or 4 fp32 values) and a few of
them, so loads are 128-bit and enough bytes are in flight to hide memory latency.
"""

from __future__ import annotations

VECTOR_BYTES = 16
THREADS_PER_WARP = 32


def num_warps_for(
    block_elements: int, element_bytes: int, *, vectors_per_thread: int, max_warps: int
) -> int:
    """Warps (a power of two in [1, max_warps]) giving each thread `vectors_per_thread`
    16-byte vectors of a block of `block_elements` elements."""
    bytes_per_warp = VECTOR_BYTES * THREADS_PER_WARP * vectors_per_thread
    num_warps = 1
    while (
        num_warps < max_warps and (2 * num_warps) * bytes_per_warp <= block_elements * element_bytes
    ):
        num_warps *= 2
    return num_warps
