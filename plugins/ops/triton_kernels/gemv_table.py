"""Which linear shapes the Triton GEMV (`gemv`) serves, with which launch; cuBLAS the rest.

Measured on an H200 (2026-11-26, `benchmarks/diagnostics/gemv_vs_cublas.py`: each launch
replayed in a CUDA graph over weights rotated past L2, copy bandwidth 4.23 TB/s in the same
run), Llama-3.1-8B shapes, bf16, one token, microseconds (% of copy bandwidth):

    shape            cuBLAS          best GEMV launch            gain
    qkv   6144x4096  15.05 (79.0%)   14.91 (79.8%) fma n16 k256  1.01x -> cuBLAS (noise)
    o     4096x4096  13.82 (57.4%)   10.86 (73.0%) fma n8 k512   1.27x
    gate_up 28672x4096 58.88 (94.3%) 56.38 (98.4%) fma n16 k256  1.04x
    down  4096x14336 33.35 (83.2%)   29.65 (93.6%) fma n8 k512   1.12x
    lm_head 128256x4096 275.4 (90.2%) 236.9 (104.8%, L2 reuse) fma n16 k256 1.16x

Entries below take the fastest launch where it beat F.linear by at least 3% (smaller gains
are within the run-to-run spread); None keeps cuBLAS. 2 to 8 tokens use the `dot` kernel, and
17 to 64 tokens its wide form (x padded to 32 or 64 tokens) where that won.

The decision reads (tokens, out_features, in_features, dtype) only: a captured decode graph
(tokens padded to its batch size) replays what was chosen at capture.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import torch
import triton

from tenon.plugins.ops.triton_kernels.gemv import (
    DOT_TOKENS,
    GEMV_DTYPES,
    MAX_GEMV_TOKENS,
    GemvConfig,
)

# Shapes not in TUNED: the GEMV for up to DEFAULT_MAX_TOKENS tokens and weights of up to
# DEFAULT_MAX_WEIGHT_ELEMENTS (an 8B model's attention projections, not its MLP or head).
DEFAULT_MAX_TOKENS = 4
DEFAULT_MAX_WEIGHT_ELEMENTS = 32 * 2**20
DEFAULT_BLOCK_N = 32
DEFAULT_BLOCK_K = 256
# Split K until there are this many programs: two per SM of an H100 or H200 (132 SMs), so
# no SM idles behind a partial wave.
TARGET_PROGRAMS = 264


def _fma(block_n: int, block_k: int) -> GemvConfig:
    return GemvConfig(kernel="fma", block_n=block_n, block_k=block_k, num_splits=1,
                      num_warps=4, num_stages=3)


def _dot(block_n: int, block_k: int, num_splits: int, num_stages: int) -> GemvConfig:
    return GemvConfig(kernel="dot", block_n=block_n, block_k=block_k, num_splits=num_splits,
                      num_warps=4, num_stages=num_stages)


def _wide(block_n: int, block_k: int, num_splits: int, num_stages: int, tokens: int, *,
          num_warps: int = 4) -> GemvConfig:
    return GemvConfig(kernel="dot", block_n=block_n, block_k=block_k, num_splits=num_splits,
                      num_warps=num_warps, num_stages=num_stages, tokens=tokens)


# (out_features, in_features, tokens rounded up to a power of two) -> launch, or None for
# torch.nn.functional.linear. Llama-3.1-8B; measured as in the module docstring.
TUNED: Mapping[tuple[int, int, int], GemvConfig | None] = {
    **{(6144, 4096, tokens): None for tokens in (1, 2, 4, 8)},  # qkv: cuBLAS as fast
    (4096, 4096, 1): _fma(8, 512),  # o_proj 1.27x
    (4096, 4096, 2): _dot(64, 128, 2, 4),  # 1.12x
    (4096, 4096, 4): _dot(64, 128, 2, 4),  # 1.12x
    (4096, 4096, 8): _dot(64, 128, 2, 4),  # 1.11x
    (28672, 4096, 1): _fma(16, 256),  # gate_up 1.04x
    (28672, 4096, 2): _dot(64, 128, 1, 4),  # 1.08x
    (28672, 4096, 4): _dot(64, 128, 1, 4),  # 1.10x
    (28672, 4096, 8): None,
    (4096, 14336, 1): _fma(8, 512),  # down 1.12x
    (4096, 14336, 2): _dot(64, 256, 2, 3),  # 1.05x
    (4096, 14336, 4): _dot(64, 256, 2, 3),  # 1.04x
    (4096, 14336, 8): _dot(64, 256, 2, 3),  # 1.04x
    (128256, 4096, 1): _fma(16, 256),  # lm_head 1.16x
    **{(128256, 4096, tokens): None for tokens in (2, 4, 8)},  # 1.01-1.02x: cuBLAS
    # Batched decode, 17 to 64 tokens (2026-11-27, `results/gemv-wide-h200.txt`); elsewhere
    # from 16 to 128 tokens cuBLAS was as fast or faster (qkv and o_proj at 65-73% of copy
    # bandwidth either way).
    (4096, 4096, 32): _wide(64, 256, 2, 3, 32),  # o_proj 1.06x
    (28672, 4096, 64): _wide(128, 64, 1, 4, 64),  # gate_up 1.03x
    (128256, 4096, 32): _wide(128, 128, 1, 3, 32, num_warps=8),  # lm_head 1.08x
    (128256, 4096, 64): _wide(128, 64, 1, 4, 64),  # lm_head 1.08x
}


# Launches `benchmarks/diagnostics/gemv_vs_cublas.py` times (each at 1, 2 and 4 splits): the
# dot kernel from mma.sync-sized (16 rows) to wgmma-sized (64 rows) tiles, and the one-token
# FMA kernel with 8 KB per program per step, registers only or pipelined.
CANDIDATES = (
    GemvConfig(kernel="dot", block_n=16, block_k=256, num_warps=2, num_stages=4),
    GemvConfig(kernel="dot", block_n=32, block_k=256, num_warps=4, num_stages=4),
    GemvConfig(kernel="dot", block_n=64, block_k=128, num_warps=4, num_stages=4),
    GemvConfig(kernel="dot", block_n=64, block_k=256, num_warps=4, num_stages=3),
    GemvConfig(kernel="fma", block_n=8, block_k=512, num_warps=4, num_stages=1),
    GemvConfig(kernel="fma", block_n=8, block_k=512, num_warps=4, num_stages=3),
    GemvConfig(kernel="fma", block_n=16, block_k=256, num_warps=4, num_stages=3),
)
CANDIDATE_SPLITS = (1, 2, 4)
# Batched decode (17 to 128 tokens): the dot kernel with x padded to 32, 64 or 128 tokens,
# weight tiles of 64 or 128 rows (a Hopper warpgroup MMA's M) and more loads in flight.
WIDE_CANDIDATES = (
    GemvConfig(kernel="dot", block_n=64, block_k=128, num_warps=4, num_stages=4),
    GemvConfig(kernel="dot", block_n=64, block_k=64, num_warps=4, num_stages=6),
    GemvConfig(kernel="dot", block_n=64, block_k=256, num_warps=4, num_stages=3),
    GemvConfig(kernel="dot", block_n=128, block_k=64, num_warps=4, num_stages=4),
    GemvConfig(kernel="dot", block_n=128, block_k=128, num_warps=8, num_stages=3),
    GemvConfig(kernel="dot", block_n=32, block_k=256, num_warps=4, num_stages=4),
)


def token_bucket(num_tokens: int) -> int:
    return triton.next_power_of_2(num_tokens)


def dot_tokens(num_tokens: int) -> int:
    """The dot kernel's padded width for `num_tokens` (at most MAX_GEMV_TOKENS)."""
    return next(width for width in DOT_TOKENS if width >= num_tokens)


def candidate_launches(num_tokens: int) -> list[GemvConfig]:
    """Every launch the sweep times for `num_tokens` (each candidate at each split count)."""
    if num_tokens > DOT_TOKENS[0]:
        configs = [attrs.evolve(c, tokens=dot_tokens(num_tokens)) for c in WIDE_CANDIDATES]
    else:
        configs = [c for c in CANDIDATES if num_tokens <= c.max_tokens()]
    return [attrs.evolve(c, num_splits=splits) for c in configs for splits in CANDIDATE_SPLITS]


def choose_gemv_config(
    num_tokens: int, out_features: int, in_features: int, dtype: torch.dtype
) -> GemvConfig | None:
    """The GEMV launch for this shape, or None where torch.nn.functional.linear serves it."""
    if dtype not in GEMV_DTYPES or min(num_tokens, out_features, in_features) < 1:
        return None
    bucket = token_bucket(num_tokens)
    if bucket > MAX_GEMV_TOKENS:
        return None
    key = (out_features, in_features, bucket)
    if key in TUNED:
        config = TUNED[key]
        return config if config is not None and num_tokens <= config.max_tokens() else None
    if num_tokens > DEFAULT_MAX_TOKENS or out_features * in_features > DEFAULT_MAX_WEIGHT_ELEMENTS:
        return None
    return default_config(out_features, in_features)


def default_config(out_features: int, in_features: int) -> GemvConfig:
    """The dot kernel, with K split until TARGET_PROGRAMS programs run, each split keeping at
    least two column blocks."""
    block_k = min(DEFAULT_BLOCK_K, max(16, triton.next_power_of_2(in_features)))
    num_programs = triton.cdiv(out_features, DEFAULT_BLOCK_N)
    num_splits = 1
    while (
        num_programs * num_splits < TARGET_PROGRAMS
        and in_features >= 2 * (2 * num_splits) * block_k
    ):
        num_splits *= 2
    return GemvConfig(
        kernel="dot", block_n=DEFAULT_BLOCK_N, block_k=block_k, num_splits=num_splits,
        num_stages=4,
    )  # fmt: skip


# The fused kernels' one-token launch (`gemv_fused`) for weights TUNED gives no FMA launch (qkv:
# cuBLAS alone is as fast as this, above). A sweep of 32 launches per shape with the fusion in
# (`benchmarks/diagnostics/fused_gemv_sweep.py`, `results/fused-gemv-sweep-h200.txt`) found
# none more than 0.5 us faster than TUNED's FMA launches or this one.
DEFAULT_FUSED_CONFIG = _fma(16, 256)


def choose_fused_gemv_config(x: torch.Tensor, weight: torch.Tensor) -> GemvConfig | None:
    """The one-token FMA launch (one split) for a GEMV over `weight` with a fused prologue on
    `x`, or None (run unfused): one token, 16-bit x and weight of one dtype, unit column
    strides. The caller checks how x's width relates to the weight's."""
    if x.dim() != 2 or x.shape[0] != 1 or x.dtype not in GEMV_DTYPES:
        return None
    if weight.dim() != 2 or weight.dtype != x.dtype or x.stride(1) != 1 or weight.stride(1) != 1:
        return None
    tuned = TUNED.get((weight.shape[0], weight.shape[1], 1))
    if tuned is not None and tuned.kernel == "fma" and tuned.num_splits == 1:
        return tuned
    return DEFAULT_FUSED_CONFIG
