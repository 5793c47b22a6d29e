"""Decode's matrix-vector product: y = x @ weight.T (+ bias) for a few tokens, streaming the
weight once at close to copy bandwidth.

    weight [N, K], rows contiguous in K (nn.Linear's layout); grid (cdiv(N, BLOCK_N), splits):

              k_per_split      k_per_split      k_per_split
            |<------------>|<------------>|<------------>|
    n0      | program(0,0) | program(0,1) | program(0,2) |   BLOCK_N rows each,
    n0+BN   | program(1,0) | program(1,1) | program(1,2) |   BLOCK_K columns a step,
    ...                                                        16-byte loads along K

Two kernels, picked by `GemvConfig.kernel`:

- "dot": tl.dot(weight tile [BLOCK_N, BLOCK_K], x tile^T [BLOCK_K, TOKENS]): the weight is the
  MMA's A operand and the tokens its N, padded to `GemvConfig.tokens` (16 to 128; rows of x
  past M are masked, so never fetched). The loop's loads are software-pipelined through shared
  memory (`num_stages` tiles in flight per program). One compiled kernel serves every M up to
  its `tokens`: 16 for decode's few tokens, 32 to 128 for batched decode, where the weight is
  still streamed once per step and cuBLAS's tiles (made for square problems) fall short of
  copy bandwidth.
- "fma": one token; acc[BLOCK_N, BLOCK_K] += w * x in registers, one row sum at the end;
  with `num_stages` above one its loop is pipelined through shared memory too.

Split-K: with more than one split each program writes its float32 partial sums into a
scratch [splits, M, N] and `_split_sum_kernel` adds them in split order (deterministic; no
atomics, so nothing to zero before a graph replay), adds the bias and rounds once. The
scratch is allocated per call with a size fixed by the shape, so a captured graph keeps it in
the graph's pool. Without splits the bias add and rounding happen in the same kernel.
Accumulation is float32 throughout, like torch's.
"""

# Kernel arguments stay unannotated: Triton reads annotations as its own types.
# mypy: disable-error-code="no-untyped-def"

from __future__ import annotations

import attrs
import torch
import triton
import triton.language as tl

DOT_TOKENS = (16, 32, 64, 128)  # the dot kernel's MMA N widths (`GemvConfig.tokens`)
MAX_GEMV_TOKENS = DOT_TOKENS[-1]  # the most tokens any launch serves
GEMV_KERNELS = ("dot", "fma")
GEMV_DTYPES = (torch.float16, torch.bfloat16)
SUM_BLOCK = 1024  # output columns per program of the split-K sum


def _power_of_two(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value < 1 or value & (value - 1):
        raise ValueError(f"{attribute.name} must be a power of two, got {value}")


@attrs.frozen(kw_only=True)
class GemvConfig:
    """One launch shape of the GEMV (`gemv_table` picks one per problem shape)."""

    kernel: str = attrs.field(validator=attrs.validators.in_(GEMV_KERNELS))
    block_n: int = attrs.field(validator=_power_of_two)  # weight rows per program
    block_k: int = attrs.field(validator=_power_of_two)  # columns per loop step
    num_splits: int = attrs.field(default=1, validator=attrs.validators.ge(1))  # split-K
    num_warps: int = attrs.field(default=4, validator=_power_of_two)
    num_stages: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    # The dot kernel's MMA N: tokens padded to this width (one of DOT_TOKENS); fma: 1.
    tokens: int = attrs.field(default=attrs.Factory(
        lambda self: DOT_TOKENS[0] if self.kernel == "dot" else 1, takes_self=True))

    def __attrs_post_init__(self) -> None:
        if self.kernel == "dot" and min(self.block_n, self.block_k) < 16:
            raise ValueError(
                f"the dot kernel needs block_n and block_k of at least 16 (an MMA tile), got "
                f"{self.block_n} and {self.block_k}"
            )
        allowed = DOT_TOKENS if self.kernel == "dot" else (1,)
        if self.tokens not in allowed:
            raise ValueError(f"the {self.kernel} kernel pads tokens to one of {allowed}, got {self.tokens}")

    def __str__(self) -> str:
        width = f"-t{self.tokens}" if self.kernel == "dot" and self.tokens != DOT_TOKENS[0] else ""
        return (
            f"{self.kernel}-n{self.block_n}-k{self.block_k}-s{self.num_splits}"
            f"-w{self.num_warps}-p{self.num_stages}{width}"
        )

    def max_tokens(self) -> int:
        return self.tokens


@triton.jit
def _finish_tile(
    acc,  # float32 [BLOCK_N, TOKENS]: acc[n, m] = partial y[m, n]
    rows,  # [BLOCK_N]
    tokens,  # [TOKENS]
    split,
    num_tokens,
    out_features,
    num_splits,
    bias_ptr,
    out_ptr,
    partial_ptr,
    out_row_stride,
    HAS_BIAS: tl.constexpr,
):
    row_mask = rows < out_features
    mask = row_mask[:, None] & (tokens < num_tokens)[None, :]
    if num_splits > 1:
        # partial: float32 [num_splits, num_tokens, out_features], contiguous
        token_rows = (split * num_tokens + tokens).to(tl.int64) * out_features
        tl.store(partial_ptr + token_rows[None, :] + rows[:, None], acc, mask=mask)
    else:
        if HAS_BIAS:
            bias = tl.load(bias_ptr + rows, mask=row_mask, other=0.0).to(tl.float32)
            acc = acc + bias[:, None]
        out_dtype = out_ptr.dtype.element_ty
        offsets = tokens[None, :].to(tl.int64) * out_row_stride + rows[:, None]
        tl.store(out_ptr + offsets, acc.to(out_dtype), mask=mask)


@triton.jit(do_not_specialize=["num_tokens", "num_splits"])
def _gemv_dot_kernel(
    x_ptr,  # [num_tokens, in_features], rows x_row_stride apart
    weight_ptr,  # [out_features, in_features], rows weight_row_stride apart
    bias_ptr,  # [out_features], or weight_ptr (unused) without a bias
    out_ptr,  # [num_tokens, out_features], rows out_row_stride apart
    partial_ptr,  # float32 [num_splits, num_tokens, out_features], or out_ptr (unused)
    num_tokens,
    out_features,
    in_features,
    x_row_stride,
    weight_row_stride,
    out_row_stride,
    k_per_split,  # a multiple of BLOCK_K
    num_splits,
    HAS_BIAS: tl.constexpr,
    EVEN_K: tl.constexpr,  # in_features is a multiple of BLOCK_K: no column mask
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    TOKENS: tl.constexpr,
):
    split = tl.program_id(1)
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    tokens = tl.arange(0, TOKENS)
    cols = tl.arange(0, BLOCK_K)
    # Row masks are constant along K, so the loads stay 16-byte vectors; masked rows (past N,
    # or padding tokens) are not fetched at all.
    row_mask = (rows < out_features)[:, None]
    token_mask = (tokens < num_tokens)[:, None]
    weight_tile = weight_ptr + rows.to(tl.int64)[:, None] * weight_row_stride + cols[None, :]
    x_tile = x_ptr + tokens.to(tl.int64)[:, None] * x_row_stride + cols[None, :]
    k_start = split * k_per_split
    k_end = tl.minimum(k_start + k_per_split, in_features)
    acc = tl.zeros([BLOCK_N, TOKENS], dtype=tl.float32)
    for k in range(k_start, k_end, BLOCK_K):
        if EVEN_K:
            w = tl.load(weight_tile + k, mask=row_mask, other=0.0)
            xs = tl.load(x_tile + k, mask=token_mask, other=0.0)
        else:
            col_mask = (k + cols < in_features)[None, :]
            w = tl.load(weight_tile + k, mask=row_mask & col_mask, other=0.0)
            xs = tl.load(x_tile + k, mask=token_mask & col_mask, other=0.0)
        acc = tl.dot(w, tl.trans(xs), acc)  # [BLOCK_N, TOKENS]
    _finish_tile(
        acc, rows, tokens, split, num_tokens, out_features, num_splits,
        bias_ptr, out_ptr, partial_ptr, out_row_stride, HAS_BIAS,
    )  # fmt: skip


@triton.jit(do_not_specialize=["num_splits"])
def _gemv_fma_kernel(
    x_ptr,  # [1, in_features]
    weight_ptr,  # [out_features, in_features], rows weight_row_stride apart
    bias_ptr,  # [out_features], or weight_ptr (unused) without a bias
    out_ptr,  # [1, out_features]
    partial_ptr,  # float32 [num_splits, 1, out_features], or out_ptr (unused)
    out_features,
    in_features,
    weight_row_stride,
    k_per_split,  # a multiple of BLOCK_K
    num_splits,
    HAS_BIAS: tl.constexpr,
    EVEN_K: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    STAGES: tl.constexpr,
):
    split = tl.program_id(1)
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.arange(0, BLOCK_K)
    row_mask = (rows < out_features)[:, None]
    weight_tile = weight_ptr + rows.to(tl.int64)[:, None] * weight_row_stride + cols[None, :]
    k_start = split * k_per_split
    k_end = tl.minimum(k_start + k_per_split, in_features)
    # Products summed per thread along K; the cross-thread row sum happens once, after the loop.
    acc = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
    # Triton pipelines a loop without a dot only when the loop itself asks for stages.
    for k in tl.range(k_start, k_end, BLOCK_K, num_stages=STAGES):
        if EVEN_K:
            w = tl.load(weight_tile + k, mask=row_mask, other=0.0)
            xs = tl.load(x_ptr + k + cols)
        else:
            col_mask = k + cols < in_features
            w = tl.load(weight_tile + k, mask=row_mask & col_mask[None, :], other=0.0)
            xs = tl.load(x_ptr + k + cols, mask=col_mask, other=0.0)
        acc += w.to(tl.float32) * xs.to(tl.float32)[None, :]
    y = tl.sum(acc, axis=1)  # [BLOCK_N]
    _finish_tile(
        y[:, None], rows, tl.arange(0, 1), split, 1, out_features, num_splits,
        bias_ptr, out_ptr, partial_ptr, 0, HAS_BIAS,
    )  # fmt: skip


@triton.jit(do_not_specialize=["num_tokens", "num_splits"])
def _split_sum_kernel(
    partial_ptr,  # float32 [num_splits, num_tokens, out_features], contiguous
    bias_ptr,  # [out_features], or partial_ptr (unused) without a bias
    out_ptr,  # [num_tokens, out_features], rows out_row_stride apart
    num_tokens,
    out_features,
    out_row_stride,
    num_splits,
    HAS_BIAS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    token = tl.program_id(1)
    cols = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < out_features
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for split in range(0, num_splits):
        row = (split * num_tokens + token).to(tl.int64) * out_features
        acc += tl.load(partial_ptr + row + cols, mask=mask, other=0.0)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    out_row = out_ptr + token.to(tl.int64) * out_row_stride
    tl.store(out_row + cols, acc.to(out_ptr.dtype.element_ty), mask=mask)


def split_layout(in_features: int, block_k: int, num_splits: int) -> tuple[int, int]:
    """(columns per split, a multiple of block_k; splits actually launched, none empty)."""
    k_per_split = triton.cdiv(triton.cdiv(in_features, num_splits), block_k) * block_k
    return k_per_split, triton.cdiv(in_features, k_per_split)


def gemv(
    x: torch.Tensor,  # [num_tokens, in_features], unit column stride
    weight: torch.Tensor,  # [out_features, in_features], unit column stride, x's dtype
    bias: torch.Tensor | None,  # [out_features], contiguous
    config: GemvConfig,
) -> torch.Tensor:  # [num_tokens, out_features], x's dtype
    """x @ weight.T (+ bias) with the launch `config` describes; allocates the output (and,
    with splits, a float32 scratch), both sized by the shapes alone."""
    num_tokens, in_features = x.shape
    out_features = weight.shape[0]
    if not 1 <= num_tokens <= config.max_tokens():
        raise ValueError(
            f"the {config.kernel} GEMV serves 1 to {config.max_tokens()} tokens, got {num_tokens}"
        )
    if x.dtype not in GEMV_DTYPES or weight.dtype != x.dtype:
        raise ValueError(
            f"the GEMV takes float16 or bfloat16 x and a weight of x's dtype, got "
            f"{x.dtype} and {weight.dtype}"
        )
    if x.stride(1) != 1 or weight.stride(1) != 1 or (bias is not None and bias.stride(0) != 1):
        raise ValueError("x, weight and bias need unit column stride; pass contiguous tensors")
    out = torch.empty((num_tokens, out_features), dtype=x.dtype, device=x.device)
    k_per_split, num_splits = split_layout(in_features, config.block_k, config.num_splits)
    partial = out
    if num_splits > 1:
        partial = torch.empty(
            (num_splits, num_tokens, out_features), dtype=torch.float32, device=x.device
        )
    has_bias = bias is not None
    bias_arg = bias if bias is not None else weight
    grid = (triton.cdiv(out_features, config.block_n), num_splits)
    even_k = in_features % config.block_k == 0
    launch = {"num_warps": config.num_warps, "num_stages": config.num_stages}
    if config.kernel == "dot":
        _gemv_dot_kernel[grid](
            x, weight, bias_arg, out, partial,
            num_tokens, out_features, in_features,
            x.stride(0), weight.stride(0), out.stride(0), k_per_split, num_splits,
            HAS_BIAS=has_bias, EVEN_K=even_k, BLOCK_N=config.block_n, BLOCK_K=config.block_k,
            TOKENS=config.tokens, **launch,
        )  # fmt: skip
    else:
        _gemv_fma_kernel[grid](
            x, weight, bias_arg, out, partial,
            out_features, in_features, weight.stride(0), k_per_split, num_splits,
            HAS_BIAS=has_bias, EVEN_K=even_k, BLOCK_N=config.block_n, BLOCK_K=config.block_k,
            STAGES=config.num_stages, **launch,
        )  # fmt: skip
    if num_splits > 1:
        _split_sum_kernel[(triton.cdiv(out_features, SUM_BLOCK), num_tokens)](
            partial, bias_arg, out, num_tokens, out_features, out.stride(0), num_splits,
            HAS_BIAS=has_bias, BLOCK=SUM_BLOCK, num_warps=4,
        )  # fmt: skip
    return out
