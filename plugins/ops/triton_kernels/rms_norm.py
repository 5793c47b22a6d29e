"""RMSNorm with an optional fused residual add: one program per row.

    without a residual:  out = weight * (x / sqrt(mean(x^2) + eps))       returns out (new)
    with one:            s = x + residual, rounded to the activation dtype
                         residual <- s
                         x <- weight * (s / sqrt(mean(s^2) + eps))        returns (x, residual)

Rounding follows `tenon.layers.ops_reference.rms_norm` step for step: the sum rounded to the
activation dtype, statistics in float32, the normalised value rounded to the activation dtype,
then the weight multiply rounded to the promoted dtype of x and weight. An fp32 sum or product
of two 16-bit values is exact or rounds innocuously (fp32 has more than twice their precision
plus two bits), so only the reduction order separates the results.

A row of up to `MAX_SINGLE_PASS_ELEMENTS` stays in registers; a longer one is read twice, in
chunks (the second read mostly hits L2).
"""

# Kernel arguments stay unannotated: Triton reads annotations as its own types.
# mypy: disable-error-code="no-untyped-def"

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tenon.plugins.ops.triton_kernels.launch import num_warps_for

MAX_SINGLE_PASS_ELEMENTS = 16384
CHUNK_ELEMENTS = 4096


@triton.jit
def _rms_norm_kernel(
    x_ptr,  # [num_tokens, hidden_size], rows x_row_stride apart
    residual_ptr,  # [num_tokens, hidden_size] or x_ptr (unused) without a residual
    weight_ptr,  # [hidden_size]
    out_ptr,  # [num_tokens, hidden_size]; may be x_ptr
    x_row_stride,
    residual_row_stride,
    out_row_stride,
    hidden_size,
    eps,
    HAS_RESIDUAL: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    SINGLE_PASS: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * x_row_stride
    residual_row = residual_ptr + row * residual_row_stride
    out_row = out_ptr + row * out_row_stride
    act_dtype = x_ptr.dtype.element_ty
    out_dtype = out_ptr.dtype.element_ty
    cols = tl.arange(0, BLOCK_SIZE)

    if SINGLE_PASS:
        mask = cols < hidden_size
        summed = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
        if HAS_RESIDUAL:
            residual = tl.load(residual_row + cols, mask=mask, other=0.0).to(tl.float32)
            rounded = (summed + residual).to(act_dtype)
            tl.store(residual_row + cols, rounded, mask=mask)
            summed = rounded.to(tl.float32)
        variance = tl.sum(summed * summed, axis=0) / hidden_size
        scale = tl.math.div_rn(1.0, tl.sqrt_rn(variance + eps))
        weight = tl.load(weight_ptr + cols, mask=mask, other=0.0).to(tl.float32)
        normed = (summed * scale).to(act_dtype).to(tl.float32)
        tl.store(out_row + cols, (normed * weight).to(out_dtype), mask=mask)
    else:
        squares = tl.zeros([BLOCK_SIZE], dtype=tl.float32)
        for start in range(0, hidden_size, BLOCK_SIZE):
            mask = start + cols < hidden_size
            summed = tl.load(x_row + start + cols, mask=mask, other=0.0).to(tl.float32)
            if HAS_RESIDUAL:
                residual = tl.load(residual_row + start + cols, mask=mask, other=0.0)
                rounded = (summed + residual.to(tl.float32)).to(act_dtype)
                tl.store(residual_row + start + cols, rounded, mask=mask)
                summed = rounded.to(tl.float32)
            squares += summed * summed
        variance = tl.sum(squares, axis=0) / hidden_size
        scale = tl.math.div_rn(1.0, tl.sqrt_rn(variance + eps))
        # The second pass reads the rounded sum back from where the first pass stored it; the
        # barrier makes those stores visible to every thread of the program.
        if HAS_RESIDUAL:
            tl.debug_barrier()
        source_row = residual_row if HAS_RESIDUAL else x_row
        for start in range(0, hidden_size, BLOCK_SIZE):
            mask = start + cols < hidden_size
            summed = tl.load(source_row + start + cols, mask=mask, other=0.0).to(tl.float32)
            weight = tl.load(weight_ptr + start + cols, mask=mask, other=0.0).to(tl.float32)
            normed = (summed * scale).to(act_dtype).to(tl.float32)
            tl.store(out_row + start + cols, (normed * weight).to(out_dtype), mask=mask)


def rms_norm(
    x: torch.Tensor,  # [num_tokens, hidden_size]
    weight: torch.Tensor,  # [hidden_size]
    eps: float,
    residual: torch.Tensor | None = None,  # [num_tokens, hidden_size], x's dtype
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """`tenon.spec.ops` rms_norm; with a residual, writes the sum into `residual` and the
    normalised rows into `x` (when the output dtype is x's) and returns them."""
    hidden_size = x.shape[-1]
    if tuple(weight.shape) != (hidden_size,):
        raise ValueError(f"weight must be [{hidden_size}], got {list(weight.shape)}")
    if residual is not None and (residual.shape != x.shape or residual.dtype != x.dtype):
        raise ValueError(
            f"residual must be {list(x.shape)} {x.dtype} like x, got "
            f"{list(residual.shape)} {residual.dtype}"
        )
    rows = _as_rows(x, hidden_size)  # [num_tokens, hidden_size]
    out_dtype = torch.promote_types(x.dtype, weight.dtype)
    residual_rows = None if residual is None else _as_rows(residual, hidden_size)
    if residual_rows is not None and out_dtype == x.dtype:
        out = rows  # in place, as the convention allows: no allocation
    else:
        out = torch.empty(rows.shape, dtype=out_dtype, device=x.device)
    if rows.shape[0] > 0:
        _launch(rows, residual_rows, weight.contiguous(), out, eps)
    if residual is None:
        return _shaped_as(out, x)
    assert residual_rows is not None
    return _shaped_as(out, x), _shaped_as(residual_rows, residual)


def _launch(
    rows: torch.Tensor,  # [num_tokens, hidden_size]
    residual_rows: torch.Tensor | None,  # [num_tokens, hidden_size]
    weight: torch.Tensor,  # [hidden_size]
    out: torch.Tensor,  # [num_tokens, hidden_size]
    eps: float,
) -> None:
    num_tokens, hidden_size = rows.shape
    row_block = triton.next_power_of_2(hidden_size)
    single_pass = row_block <= MAX_SINGLE_PASS_ELEMENTS
    block_size = row_block if single_pass else CHUNK_ELEMENTS
    has_residual = residual_rows is not None
    residual_arg = residual_rows if residual_rows is not None else rows
    _rms_norm_kernel[(num_tokens,)](
        rows, residual_arg, weight, out,
        rows.stride(0), residual_arg.stride(0), out.stride(0),
        hidden_size, eps,
        HAS_RESIDUAL=has_residual, BLOCK_SIZE=block_size, SINGLE_PASS=single_pass,
        num_warps=num_warps_for(
            block_size, rows.element_size(), vectors_per_thread=2, max_warps=16
        ),
    )  # fmt: skip


def _as_rows(tensor: torch.Tensor, hidden_size: int) -> torch.Tensor:
    """`tensor` as [num_tokens, hidden_size] with unit column stride: itself when it already
    is, else a view, else a copy (what the kernel writes then reaches the caller only through
    the returned tensors, which the convention allows)."""
    if tensor.dim() == 2 and tensor.stride(1) == 1:
        return tensor
    rows = tensor.reshape(-1, hidden_size)
    return rows if rows.stride(1) == 1 else rows.contiguous()


def _shaped_as(rows: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return rows if rows is like else rows.view(like.shape)
