"""Blocks of random KV for the tier tests, in a few layouts (block shapes) and dtypes."""

from __future__ import annotations

import hashlib

import torch

# [num_layers, num_components, block_size, num_kv_heads, head_size]
SHAPES = {
    "gqa": (2, 2, 4, 2, 8),
    "one-head-odd-dim": (3, 2, 2, 1, 24),
    "latent": (2, 1, 4, 1, 36),  # one component (MLA-style)
}


def block_hash(index: int) -> bytes:
    return hashlib.sha256(f"block-{index}".encode()).digest()


def random_blocks(
    count: int, shape: tuple[int, ...], dtype: torch.dtype = torch.float32, seed: int = 0
) -> list[tuple[bytes, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [
        (block_hash(index), torch.randn(shape, generator=generator).to(dtype))
        for index in range(count)
    ]


def nbytes(shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> int:
    return torch.empty(shape, dtype=dtype).nbytes
