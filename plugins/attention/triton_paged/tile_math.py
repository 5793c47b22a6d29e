# mypy: allow-untyped-defs
"""Tile math shared by the attention kernels: the matrix product, and the logits soft cap.

Triton computes a float32 `tl.dot` in TF32 by default (10-bit mantissas), far outside the
reference backend's float32 tolerance, so float32 launches ask for "ieee". Half-precision
operands keep the backend's default: the precision setting only concerns float32 operands, and
ROCm rejects "tf32" on most chips.
"""

from __future__ import annotations

import triton
import triton.language as tl

LOG2E: tl.constexpr = tl.constexpr(1.4426950408889634)


@triton.jit
def tile_dot(a, b, IEEE: tl.constexpr):
    """a @ b with a float32 accumulator; exact float32 products when IEEE."""
    if IEEE:
        return tl.dot(a, b, input_precision="ieee")
    else:
        return tl.dot(a, b)


@triton.jit
def scaled_scores(products, scale, soft_cap, SOFT_CAP: tl.constexpr):
    """Attention logits in base 2 (for exp2): scale * q.k, through soft_cap * tanh(x / soft_cap)
    when SOFT_CAP. tanh comes from exp2, as no vendor-neutral tanh exists; it saturates to
    +-1 where exp2 overflows or underflows."""
    if SOFT_CAP:
        doubled = tl.exp2(products * (scale * 2.0 * LOG2E / soft_cap))  # e^(2x / soft_cap)
        return (soft_cap * LOG2E) * (1.0 - 2.0 / (doubled + 1.0))
    else:
        return products * (scale * LOG2E)


@triton.jit
def paged_offsets(pages, keys, dims, kv_stride_block, kv_stride_offset, BLOCK_SIZE: tl.constexpr):
    """Element offsets [BLOCK_N, HEAD_ROWS] of keys `keys` (in pages `pages`, [BLOCK_N]) and
    head dims `dims` within one KV head's view of a layer's cache."""
    return (
        pages.to(tl.int64)[:, None] * kv_stride_block
        + (keys % BLOCK_SIZE)[:, None] * kv_stride_offset
        + dims[None, :]
    )


@triton.jit
def rotated_rows(rows_ptr, dims, mask, position, cos_ptr, sin_ptr, table_stride, HALF: tl.constexpr):
    """Rows at `rows_ptr` ([R, 1] pointers to row starts; `dims` [1, D] or [D] with R absent)
    rotated whole by the rotary tables' row `position`, NeoX halves: x * cos + partner *
    signed_sin, partner the element half a head away. Each product and the sum are rounded to
    the rows' dtype, as `tenon.plugins.ops.triton_kernels.rotary` and the reference round."""
    partner = tl.where(dims < HALF, dims + HALF, dims - HALF)
    x = tl.load(rows_ptr + dims, mask=mask, other=0.0)
    act_dtype = x.dtype
    across = tl.load(rows_ptr + partner, mask=mask, other=0.0).to(tl.float32)
    table_row = position.to(tl.int64) * table_stride
    in_head = dims < 2 * HALF
    cos = tl.load(cos_ptr + table_row + dims, mask=in_head, other=0.0).to(act_dtype)
    sin = tl.load(sin_ptr + table_row + dims, mask=in_head, other=0.0).to(act_dtype)
    straight = (x.to(tl.float32) * cos.to(tl.float32)).to(act_dtype).to(tl.float32)
    crossed = (across * sin.to(tl.float32)).to(act_dtype).to(tl.float32)
    return (straight + crossed).to(act_dtype)
