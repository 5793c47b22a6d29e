"""Which linear shapes the Triton GEMV (`gemv`) serves, with which launch; cuBLAS the rest.

Why: measured by the lead on an H200 inside a CUDA graph (Llama-3.1-8B decode, bf16, one
token, weights rotated past L2), cuBLAS reaches ~96% of copy bandwidth on gate_up (28672 x
4096), ~92% on down (4096 x 14336, split-K) and ~100% on lm_head (128256 x 4096), but only
~71% on qkv (6144 x 4096: 16.4 us for 50 MB) and ~72% on o_proj (4096 x 4096: 10.9 us with
its split-K reduce, 33.5 MB). So the large projections stay with cuBLAS and the GEMV takes
the small ones. The qkv and o_proj entries below are the default rule's launches, not yet
timed against the alternatives; `benchmarks/diagnostics/gemv_vs_cublas.py` times a sweep of
launches against F.linear and prints the winners as entries of `TUNED`.

The decision reads (tokens, out_features, in_features, dtype) only: a captured decode graph
(tokens padded to its batch size) replays what was chosen at capture.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import triton

from tenon.plugins.ops.triton_kernels.gemv import GEMV_DTYPES, TOKENS_PADDED, GemvConfig

# Shapes not in TUNED: the GEMV for up to DEFAULT_MAX_TOKENS tokens and weights of up to
# DEFAULT_MAX_WEIGHT_ELEMENTS (an 8B model's attention projections, not its MLP or head).
DEFAULT_MAX_TOKENS = 4
DEFAULT_MAX_WEIGHT_ELEMENTS = 32 * 2**20
DEFAULT_BLOCK_N = 32
DEFAULT_BLOCK_K = 256
# Split K until there are this many programs: two per SM of an H100 or H200 (132 SMs), so
# no SM idles behind a partial wave.
TARGET_PROGRAMS = 264

_QKV_8B = GemvConfig(kernel="dot", block_n=32, block_k=256, num_splits=2, num_stages=4)
_O_PROJ_8B = GemvConfig(kernel="dot", block_n=32, block_k=256, num_splits=4, num_stages=4)
_TOKEN_BUCKETS = (1, 2, 4, 8)

# (out_features, in_features, tokens rounded up to a power of two) -> launch, or None for
# torch.nn.functional.linear.
TUNED: Mapping[tuple[int, int, int], GemvConfig | None] = {
    **{(6144, 4096, tokens): _QKV_8B for tokens in _TOKEN_BUCKETS},  # Llama-3.1-8B qkv
    **{(4096, 4096, tokens): _O_PROJ_8B for tokens in _TOKEN_BUCKETS},  # o_proj
    **{(28672, 4096, tokens): None for tokens in _TOKEN_BUCKETS},  # gate_up
    **{(4096, 14336, tokens): None for tokens in _TOKEN_BUCKETS},  # down
    **{(128256, 4096, tokens): None for tokens in _TOKEN_BUCKETS},  # lm_head
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


def token_bucket(num_tokens: int) -> int:
    return triton.next_power_of_2(num_tokens)


def choose_gemv_config(
    num_tokens: int, out_features: int, in_features: int, dtype: torch.dtype
) -> GemvConfig | None:
    """The GEMV launch for this shape, or None where torch.nn.functional.linear serves it."""
    if dtype not in GEMV_DTYPES or min(num_tokens, out_features, in_features) < 1:
        return None
    bucket = token_bucket(num_tokens)
    if bucket > TOKENS_PADDED:
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
