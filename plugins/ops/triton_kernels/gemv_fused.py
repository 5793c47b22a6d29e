"""Decode's one-token GEMV with the op before it fused into its prologue: RMSNorm (with the
residual add) before a projection, SiLU-and-mul before the down projection. One launch where
the unfused chain takes two, which matters where decode is latency-bound (a small kernel costs
a few microseconds per layer).

    weight [N, K], rows contiguous in K; grid (cdiv(N, BLOCK_N),), no split-K:

            k: 0 .. BLOCK_K .. 2 BLOCK_K ..                 K
    n0      | program 0: prologue(x tile) * weight tile, every step |  BLOCK_N rows each
    n0+BN   | program 1: the same x tiles, its own weight rows      |
    ...

Every program walks all of K, so it sees the whole activation row and can compute what the
fused op needs on the fly: each program recomputes the prologue of every x tile (a few
BLOCK_K vectors, read from L2, against BLOCK_N x BLOCK_K weight elements from memory). The
loop is `_gemv_fma_kernel`'s: acc[BLOCK_N, BLOCK_K] += w * a in float32, one row sum after the
loop, pipelined through shared memory with `num_stages` above one.

- `gemv_rms_norm`: h = x (+ residual, rounded to the activation dtype as the rms_norm kernel
  rounds it); each program sums h^2 as it goes and applies s = 1/sqrt(mean(h^2) + eps) after
  the loop: out[n] = s * sum_k W[n, k] * h_k * norm_weight_k. Program 0 also stores h (the next
  layer's residual).
- `gemv_silu_and_mul`: a = silu(gate) * up per tile, rounded at `_silu_and_mul_kernel`'s two
  places, so with the same launch the output equals gemv(silu_and_mul(x), weight) bit for bit.

Both take float16 and bfloat16 (the GEMV's dtypes) and also float32, which lets Triton's
interpreter check the fused math without 16-bit intermediate roundings. Outputs are allocated
with shapes fixed by the inputs' shapes, with no host synchronisation: graph-capturable.
"""

# Kernel arguments stay unannotated: Triton reads annotations as its own types.
# mypy: disable-error-code="no-untyped-def"

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tenon.plugins.ops.triton_kernels.gemv import GEMV_DTYPES, GemvConfig

FUSED_DTYPES = (*GEMV_DTYPES, torch.float32)


@triton.jit
def _gemv_rms_norm_kernel(
    x_ptr,  # [1, in_features]
    residual_ptr,  # [1, in_features], or x_ptr (unused) without a residual
    norm_weight_ptr,  # [in_features]
    weight_ptr,  # [out_features, in_features], rows weight_row_stride apart
    out_ptr,  # [1, out_features]
    h_ptr,  # [1, in_features]: x + residual, or x_ptr (unused) without a residual
    out_features,
    in_features,
    weight_row_stride,
    eps,
    HAS_RESIDUAL: tl.constexpr,
    EVEN_K: tl.constexpr,  # in_features is a multiple of BLOCK_K: no column mask on loads
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    STAGES: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.arange(0, BLOCK_K)
    row_mask = (rows < out_features)[:, None]
    weight_tile = weight_ptr + rows.to(tl.int64)[:, None] * weight_row_stride + cols[None, :]
    act_dtype = x_ptr.dtype.element_ty
    # Program 0 stores h: a mask bound rather than a branch, so the pipelined loop stays one
    # basic block (the other programs' stores are all masked off).
    h_columns = tl.where(tl.program_id(0) == 0, in_features, 0)
    acc = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
    squares = tl.zeros([BLOCK_K], dtype=tl.float32)
    for k in tl.range(0, in_features, BLOCK_K, num_stages=STAGES):
        if EVEN_K:
            w = tl.load(weight_tile + k, mask=row_mask, other=0.0)
            h = tl.load(x_ptr + k + cols).to(tl.float32)
            norm_weight = tl.load(norm_weight_ptr + k + cols)
            if HAS_RESIDUAL:
                h += tl.load(residual_ptr + k + cols).to(tl.float32)
        else:
            col_mask = k + cols < in_features
            w = tl.load(weight_tile + k, mask=row_mask & col_mask[None, :], other=0.0)
            h = tl.load(x_ptr + k + cols, mask=col_mask, other=0.0).to(tl.float32)
            norm_weight = tl.load(norm_weight_ptr + k + cols, mask=col_mask, other=0.0)
            if HAS_RESIDUAL:
                h += tl.load(residual_ptr + k + cols, mask=col_mask, other=0.0).to(tl.float32)
        if HAS_RESIDUAL:
            # The sum in the activation dtype, as the rms_norm kernel (and HF) round it.
            rounded = h.to(act_dtype)
            tl.store(h_ptr + k + cols, rounded, mask=k + cols < h_columns)
            h = rounded.to(tl.float32)
        squares += h * h
        acc += w.to(tl.float32) * (h * norm_weight.to(tl.float32))[None, :]
    variance = tl.sum(squares, axis=0) / in_features
    scale = tl.math.div_rn(1.0, tl.sqrt_rn(variance + eps))
    y = tl.sum(acc, axis=1) * scale  # [BLOCK_N]
    tl.store(out_ptr + rows, y.to(out_ptr.dtype.element_ty), mask=rows < out_features)


@triton.jit
def _gemv_silu_and_mul_kernel(
    x_ptr,  # [1, 2 * in_features] = [gate | up]
    weight_ptr,  # [out_features, in_features], rows weight_row_stride apart
    out_ptr,  # [1, out_features]
    out_features,
    in_features,
    weight_row_stride,
    EVEN_K: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    STAGES: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.arange(0, BLOCK_K)
    row_mask = (rows < out_features)[:, None]
    weight_tile = weight_ptr + rows.to(tl.int64)[:, None] * weight_row_stride + cols[None, :]
    act_dtype = x_ptr.dtype.element_ty
    acc = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
    for k in tl.range(0, in_features, BLOCK_K, num_stages=STAGES):
        if EVEN_K:
            w = tl.load(weight_tile + k, mask=row_mask, other=0.0)
            gate = tl.load(x_ptr + k + cols).to(tl.float32)
            up = tl.load(x_ptr + in_features + k + cols).to(tl.float32)
        else:
            col_mask = k + cols < in_features
            w = tl.load(weight_tile + k, mask=row_mask & col_mask[None, :], other=0.0)
            gate = tl.load(x_ptr + k + cols, mask=col_mask, other=0.0).to(tl.float32)
            up = tl.load(x_ptr + in_features + k + cols, mask=col_mask, other=0.0).to(tl.float32)
        # `_silu_and_mul_kernel`'s formula and roundings; masked columns give 0 * 0, as the
        # GEMV's masked x does, so the sums match it term for term.
        activated = (gate / (1.0 + tl.exp(-gate))).to(act_dtype).to(tl.float32)
        a = (activated * up).to(act_dtype).to(tl.float32)
        acc += w.to(tl.float32) * a[None, :]
    y = tl.sum(acc, axis=1)  # [BLOCK_N]
    tl.store(out_ptr + rows, y.to(out_ptr.dtype.element_ty), mask=rows < out_features)


def gemv_rms_norm(
    x: torch.Tensor,  # [1, in_features], unit column stride
    norm_weight: torch.Tensor,  # [in_features], x's dtype
    eps: float,
    weight: torch.Tensor,  # [out_features, in_features], unit column stride, x's dtype
    residual: torch.Tensor | None = None,  # [1, in_features], x's dtype
    *,
    config: GemvConfig,
) -> tuple[torch.Tensor, torch.Tensor | None]:  # out [1, out_features], h [1, in_features]
    """rms_norm(h, norm_weight, eps) @ weight.T with h = x + residual (rounded to x's dtype),
    or h = x without a residual; returns (out, h as a new tensor) or (out, None). x and
    residual are left as they are.

    Accumulation is float32 and the result is rounded once, to x's dtype. The unfused chain
    (the rms_norm op, then the linear op) rounds twice more per element: the normalised value
    to the activation dtype before the norm-weight multiply, and that product before the GEMV.
    So the two differ by up to two activation-dtype roundings per term of the sum (relative
    2^-8 each in bfloat16), on top of float32 reduction order; this kernel is the one closer
    to the exact product.
    """
    _check_launch(config, "gemv_rms_norm")
    in_features = _check_operands(x, weight, "gemv_rms_norm", x_columns_per_k=1)
    _check_vector(norm_weight, "norm_weight", in_features, x.dtype)
    if residual is not None:
        if residual.shape != x.shape or residual.dtype != x.dtype or residual.stride(1) != 1:
            raise ValueError(
                f"residual must be [1, {in_features}] {x.dtype} with unit column stride like "
                f"x, got {list(residual.shape)} {residual.dtype} with strides {residual.stride()}"
            )
    out_features = weight.shape[0]
    out = torch.empty((1, out_features), dtype=x.dtype, device=x.device)
    h = None if residual is None else torch.empty((1, in_features), dtype=x.dtype, device=x.device)
    _gemv_rms_norm_kernel[(triton.cdiv(out_features, config.block_n),)](
        x, x if residual is None else residual, norm_weight, weight, out, x if h is None else h,
        out_features, in_features, weight.stride(0), eps,
        HAS_RESIDUAL=residual is not None, EVEN_K=in_features % config.block_k == 0,
        BLOCK_N=config.block_n, BLOCK_K=config.block_k, STAGES=config.num_stages,
        num_warps=config.num_warps, num_stages=config.num_stages,
    )  # fmt: skip
    return out, h


def gemv_silu_and_mul(
    x: torch.Tensor,  # [1, 2 * in_features] = [gate | up], unit column stride
    weight: torch.Tensor,  # [out_features, in_features], unit column stride, x's dtype
    *,
    config: GemvConfig,
) -> torch.Tensor:  # [1, out_features], x's dtype
    """silu_and_mul(x) @ weight.T; with the same launch, bit for bit what
    gemv(silu_and_mul(x), weight, None, config) returns. x is left as it is."""
    _check_launch(config, "gemv_silu_and_mul")
    in_features = _check_operands(x, weight, "gemv_silu_and_mul", x_columns_per_k=2)
    out_features = weight.shape[0]
    out = torch.empty((1, out_features), dtype=x.dtype, device=x.device)
    _gemv_silu_and_mul_kernel[(triton.cdiv(out_features, config.block_n),)](
        x, weight, out, out_features, in_features, weight.stride(0),
        EVEN_K=in_features % config.block_k == 0,
        BLOCK_N=config.block_n, BLOCK_K=config.block_k, STAGES=config.num_stages,
        num_warps=config.num_warps, num_stages=config.num_stages,
    )  # fmt: skip
    return out


def _check_launch(config: GemvConfig, op: str) -> None:
    if config.kernel != "fma" or config.num_splits != 1:
        raise ValueError(
            f"{op} runs the one-token fma GEMV without split-K: pass a GemvConfig with "
            f"kernel='fma' and num_splits=1, got {config}"
        )


def _check_operands(x: torch.Tensor, weight: torch.Tensor, op: str, x_columns_per_k: int) -> int:
    """Checks what both fused GEMVs need of x ([1, x_columns_per_k * in_features]) and weight;
    returns in_features (weight's K)."""
    if x.dim() != 2 or x.shape[0] != 1:
        raise ValueError(f"{op} serves one token: x must be [1, features], got {list(x.shape)}")
    if weight.dim() != 2 or min(weight.shape) < 1:
        raise ValueError(
            f"{op} needs a non-empty weight [out_features, in_features], got {list(weight.shape)}"
        )
    in_features = int(weight.shape[1])
    if x.shape[1] != x_columns_per_k * in_features:
        raise ValueError(
            f"{op}: x must be [1, {x_columns_per_k * in_features}] for a weight "
            f"{list(weight.shape)}, got {list(x.shape)}"
        )
    if x.dtype not in FUSED_DTYPES or weight.dtype != x.dtype:
        raise ValueError(
            f"{op} takes float16, bfloat16 or float32 x and a weight of x's dtype, got "
            f"{x.dtype} and {weight.dtype}"
        )
    if x.stride(1) != 1 or weight.stride(1) != 1:
        raise ValueError(f"{op}: x and weight need unit column stride; pass contiguous tensors")
    return in_features


def _check_vector(vector: torch.Tensor, name: str, size: int, dtype: torch.dtype) -> None:
    if tuple(vector.shape) != (size,) or vector.dtype != dtype or vector.stride(0) != 1:
        raise ValueError(
            f"{name} must be a contiguous [{size}] {dtype} tensor (x's dtype), got "
            f"{list(vector.shape)} {vector.dtype} with strides {vector.stride()}"
        )
