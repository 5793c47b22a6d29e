"""Rotary embedding in place, on a grid of tokens x blocks of heads.

`heads` is usually a view into the fused qkv projection's output, so rows are addressed
through its strides and only the first `rotary_dim` features of each head are touched:

    qkv row of token t:  [ q head 0 | q head 1 | ... | k head 0 | ... | v head 0 | ... ]
                                                       ^ heads[t, 0]   (heads.stride(0) = row)
    one head:            [ first half | second half | pass-through ]
                           <- rotary_dim / 2 -><- rotary_dim / 2 -><- head_size - rotary_dim ->

With the signed-sin table the op is x * cos + roll(x, rotary_dim / 2) * signed_sin, i.e.

    first  <- first * cos[:half] + second * signed_sin[:half]
    second <- second * cos[half:] + first * signed_sin[half:]

Rounding follows `tenon.layers.ops_reference.rotate`, which multiplies and adds in the
activation dtype: each product is computed in float32 (exact for 16-bit inputs) and rounded,
then their sum, so results are the reference's bits in every dtype (fused multiply-adds are
off, or float32 would round once where the reference rounds twice).
"""

# Kernel arguments stay unannotated: Triton reads annotations as its own types.
# mypy: disable-error-code="no-untyped-def"

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tenon.plugins.ops.triton_kernels.launch import num_warps_for

TILE_BYTES = 2048  # of each half per program: two 16-byte vectors per thread at 4 warps


@triton.jit
def _rotary_kernel(
    positions_ptr,  # int [num_tokens]
    heads_ptr,  # [num_tokens, num_heads, head_size], unit feature stride
    cos_ptr,  # [max_position, rotary_dim]
    sin_ptr,  # [max_position, rotary_dim], first half negated
    token_stride,
    head_stride,
    cos_row_stride,
    sin_row_stride,
    num_heads,
    half_rotary_dim,
    BLOCK_HEADS: tl.constexpr,
    BLOCK_HALF: tl.constexpr,
):
    token = tl.program_id(0).to(tl.int64)
    head_ids = tl.program_id(1) * BLOCK_HEADS + tl.arange(0, BLOCK_HEADS)
    cols = tl.arange(0, BLOCK_HALF)
    col_mask = cols < half_rotary_dim
    act_dtype = heads_ptr.dtype.element_ty

    position = tl.load(positions_ptr + token).to(tl.int64)
    cos_row = cos_ptr + position * cos_row_stride
    sin_row = sin_ptr + position * sin_row_stride
    # The reference casts the tables to the activation dtype first; a no-op when they match.
    cos_first = tl.load(cos_row + cols, mask=col_mask, other=0.0).to(act_dtype).to(tl.float32)
    cos_second = tl.load(cos_row + half_rotary_dim + cols, mask=col_mask, other=0.0)
    cos_second = cos_second.to(act_dtype).to(tl.float32)
    sin_first = tl.load(sin_row + cols, mask=col_mask, other=0.0).to(act_dtype).to(tl.float32)
    sin_second = tl.load(sin_row + half_rotary_dim + cols, mask=col_mask, other=0.0)
    sin_second = sin_second.to(act_dtype).to(tl.float32)

    # offsets, mask: [BLOCK_HEADS, BLOCK_HALF]
    offsets = token * token_stride + head_ids[:, None] * head_stride + cols[None, :]
    mask = (head_ids[:, None] < num_heads) & col_mask[None, :]
    first = tl.load(heads_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    second = tl.load(heads_ptr + offsets + half_rotary_dim, mask=mask, other=0.0)
    second = second.to(tl.float32)

    first_cos = (first * cos_first[None, :]).to(act_dtype).to(tl.float32)
    second_sin = (second * sin_first[None, :]).to(act_dtype).to(tl.float32)
    second_cos = (second * cos_second[None, :]).to(act_dtype).to(tl.float32)
    first_sin = (first * sin_second[None, :]).to(act_dtype).to(tl.float32)
    tl.store(heads_ptr + offsets, (first_cos + second_sin).to(act_dtype), mask=mask)
    tl.store(
        heads_ptr + offsets + half_rotary_dim, (second_cos + first_sin).to(act_dtype), mask=mask
    )


def rotary(
    positions: torch.Tensor,  # int64 [num_tokens]
    heads: torch.Tensor,  # [num_tokens, num_heads, head_size], rows strided
    cos_cache: torch.Tensor,  # [max_position, rotary_dim]
    signed_sin_cache: torch.Tensor,  # [max_position, rotary_dim], first half negated
) -> torch.Tensor:  # heads itself, rotated in place
    """`tenon.spec.ops` rotary: rotates the first rotary_dim features of every head in place.
    Positions must be below max_position (not checked: that would synchronise)."""
    if heads.dim() != 3:
        raise ValueError(
            f"heads must be [num_tokens, num_heads, head_size], got {list(heads.shape)}"
        )
    num_tokens, num_heads, head_size = heads.shape
    rotary_dim = cos_cache.shape[-1]
    if rotary_dim % 2 != 0 or rotary_dim > head_size:
        raise ValueError(
            f"the tables' rotary_dim must be even and at most head_size ({head_size}), "
            f"got {rotary_dim}"
        )
    if signed_sin_cache.shape != cos_cache.shape:
        raise ValueError(
            f"cos and signed-sin tables must have one shape, got {list(cos_cache.shape)} and "
            f"{list(signed_sin_cache.shape)}"
        )
    if tuple(positions.shape) != (num_tokens,):
        raise ValueError(f"positions must be [{num_tokens}], got {list(positions.shape)}")
    if num_tokens == 0 or num_heads == 0 or rotary_dim == 0:
        return heads
    if heads.stride(2) != 1:
        # Rare (a transposed view): rotate a packed copy, then write it back in place.
        packed = heads.contiguous()
        _launch(positions, packed, cos_cache, signed_sin_cache)
        heads.copy_(packed)
        return heads
    _launch(positions, heads, cos_cache, signed_sin_cache)
    return heads


def _launch(
    positions: torch.Tensor,  # int [num_tokens]
    heads: torch.Tensor,  # [num_tokens, num_heads, head_size], unit feature stride
    cos_cache: torch.Tensor,  # [max_position, rotary_dim]
    signed_sin_cache: torch.Tensor,  # [max_position, rotary_dim]
) -> None:
    num_tokens, num_heads, _ = heads.shape
    half_rotary_dim = cos_cache.shape[-1] // 2
    cos_cache = cos_cache if cos_cache.stride(-1) == 1 else cos_cache.contiguous()
    if signed_sin_cache.stride(-1) != 1:
        signed_sin_cache = signed_sin_cache.contiguous()
    block_half = triton.next_power_of_2(half_rotary_dim)
    tile_elements = max(TILE_BYTES // heads.element_size(), block_half)
    block_heads = min(triton.next_power_of_2(num_heads), tile_elements // block_half)
    grid = (num_tokens, triton.cdiv(num_heads, block_heads))
    _rotary_kernel[grid](
        positions, heads, cos_cache, signed_sin_cache,
        heads.stride(0), heads.stride(1), cos_cache.stride(0), signed_sin_cache.stride(0),
        num_heads, half_rotary_dim,
        BLOCK_HEADS=block_heads, BLOCK_HALF=block_half,
        num_warps=num_warps_for(
            2 * block_heads * block_half, heads.element_size(), vectors_per_thread=2,
            max_warps=4,
        ),
        enable_fp_fusion=False,  # no fused multiply-add: float32 rounds as the reference does
    )  # fmt: skip
