# mypy: allow-untyped-defs
"""Varlen flash attention over the paged cache, for any batch (prefills, chunks, decodes).

Grid (query tiles, num_kv_heads). Query tiles are numbered request after request; request r owns
tiles from `query_start_loc[r] // BLOCK_Q + r` on (an upper bound of the tiles before it, so the
numbering needs no host copy of the lengths), and a program finds its request by binary search:

    tokens      r0: 0 1 2 3 4 | r1: 5 | r2: 6 7 8 9 10 11 12 13      BLOCK_Q = 4
    tile index  0: r0 [0..3]   1: r0 [4]   2: (none)   3: r1 [5]   4: r2 [6..9]   5: r2 [10..13]

A tile holds BLOCK_Q query tokens times every query head of one KV group (GQA), as BLOCK_M rows:
row m is token m // group_size, head kv_head * group_size + m % group_size, so K/V tiles are read
once for the whole group. Query token i of request r (of query_len q, seq_len s) sits at position
s - q + i and sees key j when j <= s - q + i (causal) and j > s - q + i - sliding_window. Keys
are read from the cache (after this step's write) through the block table; the loop runs over
the keys some row of the tile sees, and only the tiles at the edges of that range are masked:

    [ masked (window edge) | every row sees every key: no mask | masked (causal edge) ]
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tenon.plugins.attention.triton_paged.launch_config import PrefillTiles
from tenon.plugins.attention.triton_paged.tile_math import paged_offsets, scaled_scores, tile_dot


@triton.jit
def _find_request(query_start_loc_ptr, num_reqs, tile, BLOCK_Q: tl.constexpr):
    """The last request r with query_start_loc[r] // BLOCK_Q + r <= tile."""
    low: tl.int32 = 0
    high: tl.int32 = num_reqs
    while low < high:
        middle = (low + high) // 2
        first_tile = tl.load(query_start_loc_ptr + middle) // BLOCK_Q + middle
        if first_tile <= tile:
            low = middle + 1
        else:
            high = middle
    return low - 1


@triton.jit
def _attend_tiles(
    accumulator, denominator, max_score, query, kv_head_ptr, block_table_row, positions,
    key_start, key_end, seq_len, sliding_window, scale, soft_cap, kv_stride_block,
    kv_stride_component, kv_stride_offset, dims, dim_mask,
    BLOCK_SIZE: tl.constexpr, BLOCK_N: tl.constexpr, MASKED: tl.constexpr,
    CAUSAL: tl.constexpr, USE_WINDOW: tl.constexpr, SOFT_CAP: tl.constexpr,
    DOT_IEEE: tl.constexpr,
):  # fmt: skip
    """Online softmax over keys [key_start, key_end) in tiles of BLOCK_N; masks only if MASKED."""
    for tile_start in range(key_start, key_end, BLOCK_N):
        keys = tile_start + tl.arange(0, BLOCK_N)
        if MASKED:
            # Keys past the range read the null block (always there) instead of a masked load.
            pages = tl.load(block_table_row + keys // BLOCK_SIZE, mask=keys < key_end, other=0)
        else:
            pages = tl.load(block_table_row + keys // BLOCK_SIZE)
        offsets = paged_offsets(
            pages, keys, dims, kv_stride_block, kv_stride_offset, BLOCK_SIZE
        )  # [BLOCK_N, HEAD_ROWS]
        key = tl.load(kv_head_ptr + offsets, mask=dim_mask[None, :], other=0.0)
        # scores: [BLOCK_M, BLOCK_N]
        scores = scaled_scores(tile_dot(query, tl.trans(key), DOT_IEEE), scale, soft_cap, SOFT_CAP)
        if MASKED:
            visible = keys[None, :] < seq_len
            if CAUSAL:
                visible = visible & (keys[None, :] <= positions[:, None])
            if USE_WINDOW:
                visible = visible & (keys[None, :] > positions[:, None] - sliding_window)
            scores = tl.where(visible, scores, float("-inf"))
        new_max = tl.maximum(max_score, tl.max(scores, 1))
        # A row that has seen no visible key yet keeps -inf; subtract 0 so it stays NaN-free.
        safe_max = tl.where(new_max == float("-inf"), 0.0, new_max)
        rescale = tl.exp2(max_score - safe_max)
        probs = tl.exp2(scores - safe_max[:, None])
        denominator = denominator * rescale + tl.sum(probs, 1)
        value = tl.load(
            kv_head_ptr + kv_stride_component + offsets, mask=dim_mask[None, :], other=0.0
        )
        accumulator = accumulator * rescale[:, None] + tile_dot(
            probs.to(value.dtype), value, DOT_IEEE
        )
        max_score = new_max
    return accumulator, denominator, max_score


# num_reqs changes every step: specialising on it (== 1, a multiple of 16, other) would compile
# the kernel again, about a second each, in the middle of serving.
@triton.jit(do_not_specialize=["num_reqs"])
def _prefill_kernel(
    query_ptr,  # [num_tokens, num_heads, head_size]
    kv_ptr,  # [num_blocks, 2, block_size, num_kv_heads, head_size] (strided)
    output_ptr,  # [num_tokens, num_heads, head_size]
    query_start_loc_ptr,  # int32 [num_reqs + 1]
    seq_lens_ptr,  # int32 [num_reqs]
    block_table_ptr,  # int32 [num_reqs, max_blocks_per_req]
    scale,  # the softmax scale
    soft_cap,  # logits soft cap (with SOFT_CAP)
    sliding_window,
    num_reqs,
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
    HEAD_SIZE: tl.constexpr,
    HEAD_ROWS: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_Q: tl.constexpr,
    BLOCK_N: tl.constexpr,
    CAUSAL: tl.constexpr,
    USE_WINDOW: tl.constexpr,
    SOFT_CAP: tl.constexpr,
    DOT_IEEE: tl.constexpr,
):
    tile = tl.program_id(0)
    kv_head = tl.program_id(1)
    request = _find_request(query_start_loc_ptr, num_reqs, tile, BLOCK_Q)
    query_start = tl.load(query_start_loc_ptr + request)
    query_len = tl.load(query_start_loc_ptr + request + 1) - query_start
    first_token = (tile - (query_start // BLOCK_Q + request)) * BLOCK_Q
    if first_token >= query_len:
        return
    seq_len = tl.load(seq_lens_ptr + request)
    context_len = seq_len - query_len

    rows = tl.arange(0, BLOCK_M)
    tokens = first_token + rows // GROUP_SIZE  # [BLOCK_M] index within the request's query
    heads = kv_head * GROUP_SIZE + rows % GROUP_SIZE
    row_mask = (rows // GROUP_SIZE < BLOCK_Q) & (tokens < query_len)
    positions = context_len + tokens
    dims = tl.arange(0, HEAD_ROWS)
    dim_mask = dims < HEAD_SIZE
    mask = row_mask[:, None] & dim_mask[None, :]
    token_rows = (query_start + tokens).to(tl.int64)
    query = tl.load(
        query_ptr
        + token_rows[:, None] * query_stride_token
        + heads[:, None] * query_stride_head
        + dims[None, :],
        mask=mask,
        other=0.0,
    )  # [BLOCK_M, HEAD_ROWS]

    # Keys some row sees: [key_lo, key_hi); keys every row sees: [full_lo, full_hi).
    first_position = context_len + first_token
    last_position = context_len + tl.minimum(first_token + BLOCK_Q, query_len) - 1
    key_hi = seq_len
    full_hi = seq_len
    if CAUSAL:
        key_hi = last_position + 1
        full_hi = first_position + 1
    key_lo = 0
    full_lo = 0
    if USE_WINDOW:
        key_lo = tl.maximum(first_position - sliding_window + 1, 0)
        full_lo = tl.maximum(last_position - sliding_window + 1, 0)
    # Tile edges on multiples of BLOCK_N (whole pages); the masked tiles cover the rest.
    masked_lo_end = (key_lo // BLOCK_N) * BLOCK_N
    unmasked_start = tl.maximum(
        masked_lo_end, tl.minimum(tl.cdiv(full_lo, BLOCK_N) * BLOCK_N, key_hi)
    )
    unmasked_end = tl.maximum(unmasked_start, (full_hi // BLOCK_N) * BLOCK_N)

    block_table_row = block_table_ptr + request.to(tl.int64) * block_table_stride
    kv_head_ptr = kv_ptr + kv_head.to(tl.int64) * kv_stride_head
    max_score = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    denominator = tl.zeros([BLOCK_M], dtype=tl.float32)
    accumulator = tl.zeros([BLOCK_M, HEAD_ROWS], dtype=tl.float32)
    accumulator, denominator, max_score = _attend_tiles(
        accumulator, denominator, max_score, query, kv_head_ptr, block_table_row, positions,
        masked_lo_end, unmasked_start, seq_len, sliding_window, scale, soft_cap, kv_stride_block,
        kv_stride_component, kv_stride_offset, dims, dim_mask,
        BLOCK_SIZE, BLOCK_N, True, CAUSAL, USE_WINDOW, SOFT_CAP, DOT_IEEE,
    )  # fmt: skip
    accumulator, denominator, max_score = _attend_tiles(
        accumulator, denominator, max_score, query, kv_head_ptr, block_table_row, positions,
        unmasked_start, unmasked_end, seq_len, sliding_window, scale, soft_cap, kv_stride_block,
        kv_stride_component, kv_stride_offset, dims, dim_mask,
        BLOCK_SIZE, BLOCK_N, False, CAUSAL, USE_WINDOW, SOFT_CAP, DOT_IEEE,
    )  # fmt: skip
    accumulator, denominator, max_score = _attend_tiles(
        accumulator, denominator, max_score, query, kv_head_ptr, block_table_row, positions,
        unmasked_end, key_hi, seq_len, sliding_window, scale, soft_cap, kv_stride_block,
        kv_stride_component, kv_stride_offset, dims, dim_mask,
        BLOCK_SIZE, BLOCK_N, True, CAUSAL, USE_WINDOW, SOFT_CAP, DOT_IEEE,
    )  # fmt: skip
    output = accumulator / tl.where(denominator == 0.0, 1.0, denominator)[:, None]
    pointers = (
        output_ptr
        + token_rows[:, None] * output_stride_token
        + heads[:, None] * output_stride_head
        + dims[None, :]
    )
    tl.store(pointers, output.to(output_ptr.dtype.element_ty), mask=mask)


def prefill_attention(
    output: torch.Tensor,  # [num_tokens, num_heads, head_size]; rows of requests written
    query: torch.Tensor,  # [num_tokens, num_heads, head_size]
    kv_layer: torch.Tensor,  # [num_blocks, 2, block_size, num_kv_heads, head_size] (strided)
    query_start_loc: torch.Tensor,  # int32 [num_reqs + 1]
    seq_lens: torch.Tensor,  # int32 [num_reqs]
    block_table: torch.Tensor,  # int32 [num_reqs, max_blocks_per_req]
    *,
    num_reqs: int,
    scale: float,
    sliding_window: int | None,
    soft_cap: float | None,
    causal: bool,
    tiles: PrefillTiles,
) -> None:
    """Launch the prefill kernel over every query row of the `num_reqs` requests."""
    num_tokens, num_heads, head_size = query.shape
    num_kv_heads, block_size = kv_layer.shape[3], kv_layer.shape[2]
    num_tiles = num_tokens // tiles.block_q + num_reqs  # bounds the tile numbering above
    _prefill_kernel[(num_tiles, num_kv_heads)](
        query, kv_layer, output, query_start_loc, seq_lens, block_table,
        scale, soft_cap or 0.0, sliding_window or 0, num_reqs,
        query.stride(0), query.stride(1), output.stride(0), output.stride(1),
        kv_layer.stride(0), kv_layer.stride(1), kv_layer.stride(2), kv_layer.stride(3),
        block_table.stride(0),
        GROUP_SIZE=num_heads // num_kv_heads,
        HEAD_SIZE=head_size,
        HEAD_ROWS=tiles.head_rows,
        BLOCK_SIZE=block_size,
        BLOCK_M=tiles.block_m,
        BLOCK_Q=tiles.block_q,
        BLOCK_N=tiles.block_n,
        CAUSAL=causal,
        USE_WINDOW=sliding_window is not None,
        SOFT_CAP=soft_cap is not None,
        DOT_IEEE=query.dtype == torch.float32,
        num_warps=tiles.num_warps,
        num_stages=tiles.num_stages,
    )  # fmt: skip
