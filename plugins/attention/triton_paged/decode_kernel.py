# mypy: allow-untyped-defs
"""Split-KV decode (flash-decoding): every request has at most one query row, its last token.

Grid (rows, num_kv_heads, num_splits). A program takes request r, KV head g and split s: it
reads the query rows of every head of g's group (GQA: query head h reads KV head
h // group_size, so K/V are read once per group) and attends over its share of the keys:

    keys of request r:  [lo ............................................ seq_len)
    split s of S:       [lo + s * chunk, lo + (s + 1) * chunk)    chunk = the keys / S, rounded
                                                                  up to whole tiles of BLOCK_N
    lo is 0, or with a sliding window seq_len - window rounded down to a whole tile; a tile of
    BLOCK_N keys spans several pages (blocks of block_size tokens): key k sits at
        kv_layer[block_table[r, k // block_size], component, k % block_size, g]

seq_len (and so every range) is read on the device inside the kernel, so the launch shape
depends only on the request count, and a split past the end of a short sequence does nothing.
With one split the program writes the output row; with several it writes a normalised partial
output and its log-sum-exp (base 2) to scratch, and `_reduce_kernel` merges the splits:

    out = sum_s 2^(lse_s - max) * partial_s / sum_s 2^(lse_s - max)

Padding requests (seq_len 0) get zeros, and so do rows past query_start_loc[num_reqs] (rows of
no request), so every element of the output is written.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tenon.plugins.attention.triton_paged.launch_config import DecodeTiles, next_power_of_2
from tenon.plugins.attention.triton_paged.tile_math import scaled_scores, tile_dot


@triton.jit
def _zero_padding_row(
    output_ptr, query_start_loc_ptr, num_reqs, num_tokens, row, heads, head_mask, dims,
    output_stride_token, output_stride_head, HEAD_SIZE: tl.constexpr,
):  # fmt: skip
    """Rows at or past query_start_loc[num_reqs] belong to no request: zeros, not garbage."""
    if (row >= tl.load(query_start_loc_ptr + num_reqs)) & (row < num_tokens):
        mask = head_mask[:, None] & (dims[None, :] < HEAD_SIZE)
        pointers = output_ptr + row * output_stride_token + heads[:, None] * output_stride_head
        zeros = tl.zeros(mask.shape, dtype=output_ptr.dtype.element_ty)
        tl.store(pointers + dims[None, :], zeros, mask=mask)


@triton.jit
def _decode_kernel(
    query_ptr,  # [num_tokens, num_heads, head_size]
    kv_ptr,  # [num_blocks, 2, block_size, num_kv_heads, head_size] (strided)
    output_ptr,  # [num_tokens, num_heads, head_size]
    partial_ptr,  # float32 [num_reqs, num_heads, num_splits, head_size] (several splits)
    lse_ptr,  # float32 [num_reqs, num_heads, num_splits] (several splits)
    query_start_loc_ptr,  # int32 [num_reqs + 1]
    seq_lens_ptr,  # int32 [num_reqs]
    block_table_ptr,  # int32 [num_reqs, max_blocks_per_req]
    scale,  # the softmax scale
    soft_cap,  # logits soft cap (with SOFT_CAP)
    sliding_window,  # keys within this many positions of the query (with USE_WINDOW)
    num_reqs,
    num_tokens,
    query_stride_token,
    query_stride_head,
    output_stride_token,
    output_stride_head,
    kv_stride_block,
    kv_stride_component,
    kv_stride_offset,
    kv_stride_head,
    block_table_stride,
    GROUP_SIZE: tl.constexpr,
    GROUP_ROWS: tl.constexpr,
    HEAD_SIZE: tl.constexpr,
    HEAD_ROWS: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    BLOCK_N: tl.constexpr,
    USE_WINDOW: tl.constexpr,
    SPLIT: tl.constexpr,  # several splits: write partials for _reduce_kernel
    SOFT_CAP: tl.constexpr,
    DOT_IEEE: tl.constexpr,
):
    request = tl.program_id(0)
    kv_head = tl.program_id(1)
    split = tl.program_id(2)
    num_splits = tl.num_programs(2)
    group = tl.arange(0, GROUP_ROWS)
    head_mask = group < GROUP_SIZE
    heads = kv_head * GROUP_SIZE + group  # [GROUP_ROWS] query heads of this KV head
    dims = tl.arange(0, HEAD_ROWS)
    dim_mask = dims < HEAD_SIZE
    if not SPLIT:
        if split == 0:
            _zero_padding_row(
                output_ptr, query_start_loc_ptr, num_reqs, num_tokens, request, heads,
                head_mask, dims, output_stride_token, output_stride_head, HEAD_SIZE,
            )  # fmt: skip
    if request >= num_reqs:
        return
    query_end = tl.load(query_start_loc_ptr + request + 1)
    if query_end == tl.load(query_start_loc_ptr + request):
        return  # a request without a query row this step
    row = (query_end - 1).to(tl.int64)
    seq_len = tl.load(seq_lens_ptr + request)

    # The keys this split attends to; tiles start on multiples of BLOCK_N (whole pages).
    key_lo = 0
    if USE_WINDOW:
        key_lo = tl.maximum(seq_len - sliding_window, 0)
    range_start = (key_lo // BLOCK_N) * BLOCK_N
    chunk = tl.cdiv(tl.cdiv(seq_len - range_start, num_splits), BLOCK_N) * BLOCK_N
    split_start = range_start + split * chunk
    split_end = tl.minimum(split_start + chunk, seq_len)

    query_mask = head_mask[:, None] & dim_mask[None, :]
    query = tl.load(
        query_ptr + row * query_stride_token + heads[:, None] * query_stride_head + dims[None, :],
        mask=query_mask,
        other=0.0,
    )  # [GROUP_ROWS, HEAD_ROWS]
    block_table_row = block_table_ptr + request.to(tl.int64) * block_table_stride
    kv_head_ptr = kv_ptr + kv_head.to(tl.int64) * kv_stride_head
    max_score = tl.full([GROUP_ROWS], float("-inf"), dtype=tl.float32)
    denominator = tl.zeros([GROUP_ROWS], dtype=tl.float32)
    accumulator = tl.zeros([GROUP_ROWS, HEAD_ROWS], dtype=tl.float32)
    for tile_start in range(split_start, split_end, BLOCK_N):
        keys = tile_start + tl.arange(0, BLOCK_N)
        key_mask = keys < split_end
        if USE_WINDOW:
            key_mask = key_mask & (keys >= key_lo)
        # Keys past the range read the null block (always there) instead of a masked load.
        pages = tl.load(block_table_row + keys // BLOCK_SIZE, mask=key_mask, other=0)
        offsets = (
            pages.to(tl.int64)[:, None] * kv_stride_block
            + (keys % BLOCK_SIZE)[:, None] * kv_stride_offset
            + dims[None, :]
        )  # [BLOCK_N, HEAD_ROWS]
        key = tl.load(kv_head_ptr + offsets, mask=dim_mask[None, :], other=0.0)
        # scores: [GROUP_ROWS, BLOCK_N]; a tile always holds a visible key, so rows stay finite
        scores = scaled_scores(tile_dot(query, tl.trans(key), DOT_IEEE), scale, soft_cap, SOFT_CAP)
        scores = tl.where(key_mask[None, :], scores, float("-inf"))
        new_max = tl.maximum(max_score, tl.max(scores, 1))
        rescale = tl.exp2(max_score - new_max)
        probs = tl.exp2(scores - new_max[:, None])
        denominator = denominator * rescale + tl.sum(probs, 1)
        value = tl.load(
            kv_head_ptr + kv_stride_component + offsets, mask=dim_mask[None, :], other=0.0
        )
        accumulator = accumulator * rescale[:, None] + tile_dot(
            probs.to(value.dtype), value, DOT_IEEE
        )
        max_score = new_max

    empty = denominator == 0.0  # a padding request, or a split past the end of the sequence
    output = accumulator / tl.where(empty, 1.0, denominator)[:, None]
    if SPLIT:
        head_index = request.to(tl.int64) * tl.num_programs(1) * GROUP_SIZE + heads
        lse = tl.where(empty, float("-inf"), max_score + tl.log2(tl.where(empty, 1.0, denominator)))
        tl.store(lse_ptr + head_index * num_splits + split, lse, mask=head_mask)
        partial_row = (head_index * num_splits + split) * HEAD_SIZE
        tl.store(partial_ptr + partial_row[:, None] + dims[None, :], output, mask=query_mask)
    else:
        pointers = output_ptr + row * output_stride_token + heads[:, None] * output_stride_head
        tl.store(pointers + dims[None, :], output.to(output_ptr.dtype.element_ty), mask=query_mask)


@triton.jit
def _reduce_kernel(
    output_ptr,  # [num_tokens, num_heads, head_size]
    partial_ptr,  # float32 [num_reqs, num_heads, num_splits, head_size]
    lse_ptr,  # float32 [num_reqs, num_heads, num_splits]
    query_start_loc_ptr,  # int32 [num_reqs + 1]
    num_reqs,
    num_tokens,
    num_splits,
    output_stride_token,
    output_stride_head,
    HEAD_SIZE: tl.constexpr,
    HEAD_ROWS: tl.constexpr,
    SPLIT_ROWS: tl.constexpr,  # num_splits padded to a power of two
):
    """Grid (rows, num_heads): merge one head's splits by their log-sum-exp."""
    request = tl.program_id(0)
    head = tl.program_id(1)
    dims = tl.arange(0, HEAD_ROWS)
    dim_mask = dims < HEAD_SIZE
    heads = head + tl.arange(0, 1)
    _zero_padding_row(
        output_ptr, query_start_loc_ptr, num_reqs, num_tokens, request, heads,
        heads >= 0, dims, output_stride_token, output_stride_head, HEAD_SIZE,
    )  # fmt: skip
    if request >= num_reqs:
        return
    query_end = tl.load(query_start_loc_ptr + request + 1)
    if query_end == tl.load(query_start_loc_ptr + request):
        return
    row = (query_end - 1).to(tl.int64)
    splits = tl.arange(0, SPLIT_ROWS)
    split_mask = splits < num_splits
    head_index = request.to(tl.int64) * tl.num_programs(1) + head
    lse = tl.load(lse_ptr + head_index * num_splits + splits, mask=split_mask, other=float("-inf"))
    max_lse = tl.max(lse, 0)
    weights = tl.exp2(lse - tl.where(max_lse == float("-inf"), 0.0, max_lse))  # [SPLIT_ROWS]
    total = tl.sum(weights, 0)
    partial = tl.load(
        partial_ptr + (head_index * num_splits + splits)[:, None] * HEAD_SIZE + dims[None, :],
        mask=split_mask[:, None] & dim_mask[None, :],
        other=0.0,
    )  # [SPLIT_ROWS, HEAD_ROWS]
    output = tl.sum(partial * weights[:, None], 0) / tl.where(total == 0.0, 1.0, total)
    pointers = output_ptr + row * output_stride_token + head * output_stride_head
    tl.store(pointers + dims, output.to(output_ptr.dtype.element_ty), mask=dim_mask)


def decode_attention(
    output: torch.Tensor,  # [num_tokens, num_heads, head_size], every element written
    query: torch.Tensor,  # [num_tokens, num_heads, head_size]
    kv_layer: torch.Tensor,  # [num_blocks, 2, block_size, num_kv_heads, head_size] (strided)
    query_start_loc: torch.Tensor,  # int32 [num_reqs + 1]
    seq_lens: torch.Tensor,  # int32 [num_reqs]
    block_table: torch.Tensor,  # int32 [num_reqs, max_blocks_per_req]
    scratch: tuple[torch.Tensor, torch.Tensor],  # float32 partials, lse: flat, large enough
    *,
    num_reqs: int,
    num_splits: int,
    scale: float,
    sliding_window: int | None,
    soft_cap: float | None,
    tiles: DecodeTiles,
) -> None:
    """Launch the decode kernel (and, with several splits, the reduction) into `output`."""
    num_tokens, num_heads, head_size = query.shape
    num_kv_heads, block_size = kv_layer.shape[3], kv_layer.shape[2]
    partial, lse = scratch
    split = num_splits > 1
    rows = max(num_reqs, num_tokens)
    _decode_kernel[(rows, num_kv_heads, num_splits)](
        query, kv_layer, output, partial, lse, query_start_loc, seq_lens, block_table,
        scale, soft_cap or 0.0, sliding_window or 0, num_reqs, num_tokens,
        query.stride(0), query.stride(1), output.stride(0), output.stride(1),
        kv_layer.stride(0), kv_layer.stride(1), kv_layer.stride(2), kv_layer.stride(3),
        block_table.stride(0),
        GROUP_SIZE=num_heads // num_kv_heads,
        GROUP_ROWS=tiles.group_rows,
        HEAD_SIZE=head_size,
        HEAD_ROWS=tiles.head_rows,
        BLOCK_SIZE=block_size,
        BLOCK_N=tiles.block_n,
        USE_WINDOW=sliding_window is not None,
        SPLIT=split,
        SOFT_CAP=soft_cap is not None,
        DOT_IEEE=query.dtype == torch.float32,
        num_warps=tiles.num_warps,
        num_stages=tiles.num_stages,
    )  # fmt: skip
    if split:
        _reduce_kernel[(rows, num_heads)](
            output, partial, lse, query_start_loc, num_reqs, num_tokens, num_splits,
            output.stride(0), output.stride(1),
            HEAD_SIZE=head_size,
            HEAD_ROWS=tiles.head_rows,
            SPLIT_ROWS=next_power_of_2(num_splits),
            num_warps=4,
        )  # fmt: skip
