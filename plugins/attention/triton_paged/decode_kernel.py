# mypy: allow-untyped-defs
"""Split-KV decode (flash-decoding) in one launch: KV write, attention and split merge.

Every request has at most one query row this step, its last token. Grid (rows, num_kv_heads,
num_splits). A program takes request r, KV head g and split s: it reads the query rows of every
head of g's group (GQA: query head h reads KV head h // group_size, so K/V are read once per
group) and attends over its share of the keys:

    keys of request r:  [lo ............................................ seq_len)
    split s of S:       [lo + s * chunk, lo + (s + 1) * chunk)    chunk = the keys / S, rounded
                                                                  up to whole tiles of BLOCK_N
    lo is 0, or with a sliding window seq_len - window rounded down to a whole tile; a tile of
    BLOCK_N keys spans several pages (blocks of block_size tokens): key k sits at
        kv_layer[block_table[r, k // block_size], component, k % block_size, g]

This step's K/V rows are written to the cache here too: split 0's program of row t (grid index
t < num_tokens) writes row t's K/V of head g to its slot. Programs run in no fixed order, so no
program reads the newest key (position seq_len - 1, this row's own) from the cache: the cache
loop stops before it, and split 0 starts its online softmax from `key`/`value` row t instead.

seq_len (and so every range) is read on the device inside the kernel, so the launch shape
depends only on the request count, and a split past the end of a short sequence does nothing.
With one split the program writes the output row; with several, the last split to finish
merges them (`split_merge`); a sequence uses only cdiv(its keys, MIN_SPLIT_KEYS) of the
splits, the others exit at once, and in a LOW_LATENCY launch (a few rows, as in decode-1) one
split up to SINGLE_SPLIT_KEYS keys. Padding requests (seq_len 0) get zeros, and so do rows past
query_start_loc[num_reqs] (rows of no request), so every element of the output is written.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tenon.plugins.attention.triton_paged.launch_config import (
    MIN_KEYS_PER_SPLIT,
    SINGLE_SPLIT_KEYS,
    DecodeTiles,
    low_latency_tiles,
    merge_splits_per_load,
    next_power_of_2,
)
from tenon.plugins.attention.triton_paged.split_merge import publish_split
from tenon.plugins.attention.triton_paged.tile_math import (
    paged_offsets,
    rotated_rows,
    scaled_scores,
    tile_dot,
)
from tenon.plugins.attention.triton_paged.write_kernel import store_kv_at_slot, write_token_kv


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
def _tile_pages(
    block_table_row, tile_start, split_end, key_lo, BLOCK_N: tl.constexpr,
    BLOCK_SIZE: tl.constexpr, USE_WINDOW: tl.constexpr,
):  # fmt: skip
    """The page of each key of the tile at tile_start ([BLOCK_N]); keys outside the split (or
    the window) read the null block (always there) instead of a masked K/V load."""
    keys = tile_start + tl.arange(0, BLOCK_N)
    key_mask = keys < split_end
    if USE_WINDOW:
        key_mask = key_mask & (keys >= key_lo)
    return tl.load(block_table_row + keys // BLOCK_SIZE, mask=key_mask, other=0)


@triton.jit
def _softmax_step(
    query, key, keys, split_end, key_lo, max_score, denominator, scale, soft_cap,
    USE_WINDOW: tl.constexpr, SOFT_CAP: tl.constexpr, DOT_IEEE: tl.constexpr,
):  # fmt: skip
    """The online softmax over one tile of keys `keys` ([BLOCK_N]) with K rows `key`: returns
    (new max, rescale of the old accumulator, probabilities [GROUP_ROWS, BLOCK_N], denominator)."""
    key_mask = keys < split_end
    if USE_WINDOW:
        key_mask = key_mask & (keys >= key_lo)
    # scores: [GROUP_ROWS, BLOCK_N]. Rows stay finite: split 0 starts from the newest key, and
    # every tile of a later split begins with a visible key.
    scores = scaled_scores(tile_dot(query, tl.trans(key), DOT_IEEE), scale, soft_cap, SOFT_CAP)
    scores = tl.where(key_mask[None, :], scores, float("-inf"))
    new_max = tl.maximum(max_score, tl.max(scores, 1))
    rescale = tl.exp2(max_score - new_max)
    probs = tl.exp2(scores - new_max[:, None])
    return new_max, rescale, probs, denominator * rescale + tl.sum(probs, 1)


# The counts change every eager step; no recompilation per value class (see the prefill kernel).
@triton.jit(do_not_specialize=["num_reqs", "num_tokens"])
def _decode_kernel(
    query_ptr,  # [num_tokens, num_heads, head_size]
    key_ptr,  # [num_tokens, num_kv_heads, head_size]
    value_ptr,  # [num_tokens, num_kv_heads, head_size]
    kv_ptr,  # [num_blocks, 2, block_size, num_kv_heads, head_size] (strided)
    output_ptr,  # [num_tokens, num_heads, head_size]
    partial_ptr,  # float32 [num_reqs, num_heads, num_splits, head_size] (several splits)
    lse_ptr,  # float32 [num_reqs, num_heads, num_splits] (several splits)
    arrival_ptr,  # int32 [num_reqs, num_kv_heads], zeros between launches (several splits)
    query_start_loc_ptr,  # int32 [num_reqs + 1]
    seq_lens_ptr,  # int32 [num_reqs]
    block_table_ptr,  # int32 [num_reqs, max_blocks_per_req]
    slot_mapping_ptr,  # int64 [>= num_tokens]
    cos_ptr,  # [max_position, head_size] (with ROTARY)
    sin_ptr,  # [max_position, head_size], first half negated (with ROTARY)
    table_stride,  # elements between rows of the two tables (with ROTARY)
    scale,  # the softmax scale
    soft_cap,  # logits soft cap (with SOFT_CAP)
    sliding_window,  # keys within this many positions of the query (with USE_WINDOW)
    num_reqs,
    num_tokens,
    query_stride_token,
    query_stride_head,
    key_stride_token,
    key_stride_head,
    value_stride_token,
    value_stride_head,
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
    SPLIT: tl.constexpr,  # several splits: publish partials, the last split merges
    MIN_SPLIT_KEYS: tl.constexpr,  # a sequence uses at most cdiv(its keys, this) of the splits
    SINGLE_SPLIT_KEYS: tl.constexpr,  # ... and one split up to this many keys
    LOW_LATENCY: tl.constexpr,  # few programs: the hand-pipelined loop (see the loop)
    SPLIT_ROWS: tl.constexpr,  # num_splits padded to a power of two
    MERGE_SPLITS: tl.constexpr,  # splits the merge loads at once
    SOFT_CAP: tl.constexpr,
    DOT_IEEE: tl.constexpr,
    ROTARY: tl.constexpr,  # query and key arrive unrotated: rotate them here (`FusedRotary`)
):
    request = tl.program_id(0)  # for split 0 also the row written to the cache (and zeroed)
    kv_head = tl.program_id(1)
    split = tl.program_id(2)
    num_kv_heads = tl.num_programs(1)
    num_splits = tl.num_programs(2)
    group = tl.arange(0, GROUP_ROWS)
    head_mask = group < GROUP_SIZE
    heads = kv_head * GROUP_SIZE + group  # [GROUP_ROWS] query heads of this KV head
    dims = tl.arange(0, HEAD_ROWS)
    dim_mask = dims < HEAD_SIZE
    # Round trip 1: every index this program needs, loaded together (a request past num_reqs
    # is a padding row of the launch: its loads are masked off).
    live = request < num_reqs
    query_start = tl.load(query_start_loc_ptr + request, mask=live, other=0)
    query_end = tl.load(query_start_loc_ptr + request + 1, mask=live, other=0)
    seq_len = tl.load(seq_lens_ptr + request, mask=live, other=0)
    if split == 0:
        # With ROTARY the row's rotated K/V are written below, once rotated (rows of no request
        # are padding, which need not be written).
        if not ROTARY:
            if request < num_tokens:
                write_token_kv(
                    key_ptr, value_ptr, kv_ptr, slot_mapping_ptr, request,
                    kv_head + tl.zeros([1, 1], dtype=tl.int32), dims[None, :],
                    dim_mask[None, :], key_stride_token, key_stride_head, value_stride_token,
                    value_stride_head, kv_stride_block, kv_stride_component, kv_stride_offset,
                    kv_stride_head, BLOCK_SIZE,
                )  # fmt: skip
        _zero_padding_row(
            output_ptr, query_start_loc_ptr, num_reqs, num_tokens, request, heads,
            head_mask, dims, output_stride_token, output_stride_head, HEAD_SIZE,
        )  # fmt: skip
    if request >= num_reqs:
        return
    if query_end == query_start:
        return  # a request without a query row this step
    row = (query_end - 1).to(tl.int64)
    # A decode row is its request's newest token: its position is seq_len - 1 (the runner's
    # positions are token indices), known without another load.
    position = tl.maximum(seq_len - 1, 0)  # 0 for a padding request (seq_len 0)

    # The keys this split attends to; tiles start on multiples of BLOCK_N (whole pages).
    key_lo = 0
    if USE_WINDOW:
        key_lo = tl.maximum(seq_len - sliding_window, 0)
    range_start = (key_lo // BLOCK_N) * BLOCK_N
    # A short sequence uses fewer splits than the launch has: the rest exit here, and a lone
    # split writes its output without the merge (decode-1 at a few hundred keys: one to three
    # splits instead of thirty-odd publishing and merging mostly empty partials).
    active_splits = tl.minimum(
        num_splits, tl.maximum(tl.cdiv(seq_len - range_start, MIN_SPLIT_KEYS), 1)
    )
    if seq_len - range_start <= SINGLE_SPLIT_KEYS:
        active_splits = 1
    if split >= active_splits:
        return
    chunk = tl.cdiv(tl.cdiv(seq_len - range_start, active_splits), BLOCK_N) * BLOCK_N
    split_start = range_start + split * chunk
    split_end = tl.minimum(split_start + chunk, seq_len - 1)  # the newest key: from `key`

    # Round trip 2: (LOW_LATENCY) the first tile's pages, the query rows and (split 0) the
    # newest key/value.
    block_table_row = block_table_ptr + request.to(tl.int64) * block_table_stride
    if LOW_LATENCY:
        pages = _tile_pages(
            block_table_row, split_start, split_end, key_lo, BLOCK_N, BLOCK_SIZE, USE_WINDOW
        )  # fmt: skip
    if ROTARY:
        slot = tl.load(slot_mapping_ptr + row).to(tl.int64)
    query_mask = head_mask[:, None] & dim_mask[None, :]
    query_rows = query_ptr + row * query_stride_token + heads[:, None] * query_stride_head
    if ROTARY:
        query = rotated_rows(
            query_rows, dims[None, :], query_mask, position, cos_ptr, sin_ptr, table_stride,
            HEAD_SIZE // 2,
        )  # fmt: skip
    else:
        query = tl.load(query_rows + dims[None, :], mask=query_mask, other=0.0)
    # query: [GROUP_ROWS, HEAD_ROWS]

    max_score = tl.full([GROUP_ROWS], float("-inf"), dtype=tl.float32)
    denominator = tl.zeros([GROUP_ROWS], dtype=tl.float32)
    accumulator = tl.zeros([GROUP_ROWS, HEAD_ROWS], dtype=tl.float32)
    if (split == 0) & (seq_len > 0):
        # Split 0 starts from the newest key, rounded to the cache's dtype as the cache holds it.
        key_row = key_ptr + row * key_stride_token + kv_head * key_stride_head
        if ROTARY:
            newest_key = rotated_rows(
                key_row, dims, dim_mask, position, cos_ptr, sin_ptr, table_stride, HEAD_SIZE // 2
            )  # fmt: skip
        else:
            newest_key = tl.load(key_row + dims, mask=dim_mask)
        newest_key = newest_key.to(kv_ptr.dtype.element_ty)  # [HEAD_ROWS]
        newest_value = tl.load(
            value_ptr + row * value_stride_token + kv_head * value_stride_head + dims,
            mask=dim_mask,
        ).to(kv_ptr.dtype.element_ty)  # [HEAD_ROWS]
        if ROTARY:
            store_kv_at_slot(
                kv_ptr, slot, kv_head, dims, dim_mask, newest_key, newest_value,
                kv_stride_block, kv_stride_component, kv_stride_offset, kv_stride_head,
                BLOCK_SIZE,
            )  # fmt: skip
        products = tl.sum(query.to(tl.float32) * newest_key.to(tl.float32)[None, :], 1)
        max_score = scaled_scores(products, scale, soft_cap, SOFT_CAP)  # [GROUP_ROWS]
        denominator = tl.full([GROUP_ROWS], 1.0, dtype=tl.float32)
        accumulator = accumulator + newest_value.to(tl.float32)[None, :]

    kv_head_ptr = kv_ptr + kv_head.to(tl.int64) * kv_stride_head
    if LOW_LATENCY:
        # One round trip a tile: its K and V are loaded together, and the next tile's pages
        # while they are in flight (the first tile's went with the query). Faster where a few
        # programs wait on memory latency; with many programs Triton's own pipelining (the
        # other loop) keeps more bytes in flight.
        for tile_start in range(split_start, split_end, BLOCK_N):
            keys = tile_start + tl.arange(0, BLOCK_N)
            offsets = paged_offsets(
                pages, keys, dims, kv_stride_block, kv_stride_offset, BLOCK_SIZE
            )  # [BLOCK_N, HEAD_ROWS]
            key = tl.load(kv_head_ptr + offsets, mask=dim_mask[None, :], other=0.0)
            value = tl.load(
                kv_head_ptr + kv_stride_component + offsets, mask=dim_mask[None, :], other=0.0
            )
            pages = _tile_pages(
                block_table_row, tile_start + BLOCK_N, split_end, key_lo, BLOCK_N, BLOCK_SIZE,
                USE_WINDOW,
            )  # fmt: skip
            max_score, rescale, probs, denominator = _softmax_step(
                query, key, keys, split_end, key_lo, max_score, denominator, scale, soft_cap,
                USE_WINDOW, SOFT_CAP, DOT_IEEE,
            )  # fmt: skip
            accumulator = accumulator * rescale[:, None] + tile_dot(
                probs.to(value.dtype), value, DOT_IEEE
            )
    else:
        for tile_start in range(split_start, split_end, BLOCK_N):
            keys = tile_start + tl.arange(0, BLOCK_N)
            # Keys past the range read the null block (always there) instead of a masked load.
            pages = _tile_pages(
                block_table_row, tile_start, split_end, key_lo, BLOCK_N, BLOCK_SIZE, USE_WINDOW
            )  # fmt: skip
            offsets = paged_offsets(
                pages, keys, dims, kv_stride_block, kv_stride_offset, BLOCK_SIZE
            )  # [BLOCK_N, HEAD_ROWS]
            key = tl.load(kv_head_ptr + offsets, mask=dim_mask[None, :], other=0.0)
            max_score, rescale, probs, denominator = _softmax_step(
                query, key, keys, split_end, key_lo, max_score, denominator, scale, soft_cap,
                USE_WINDOW, SOFT_CAP, DOT_IEEE,
            )  # fmt: skip
            value = tl.load(
                kv_head_ptr + kv_stride_component + offsets, mask=dim_mask[None, :], other=0.0
            )
            accumulator = accumulator * rescale[:, None] + tile_dot(
                probs.to(value.dtype), value, DOT_IEEE
            )

    empty = denominator == 0.0  # a padding request, or a split past the end of the sequence
    output = accumulator / tl.where(empty, 1.0, denominator)[:, None]
    pointers = output_ptr + row * output_stride_token + heads[:, None] * output_stride_head
    if SPLIT:
        if active_splits > 1:
            lse = tl.where(
                empty, float("-inf"), max_score + tl.log2(tl.where(empty, 1.0, denominator))
            )
            publish_split(
                output_ptr, partial_ptr, lse_ptr, arrival_ptr, output, lse, row, request, kv_head,
                num_kv_heads, split, num_splits, active_splits, output_stride_token,
                output_stride_head,
                GROUP_SIZE, GROUP_ROWS, HEAD_SIZE, HEAD_ROWS, SPLIT_ROWS, MERGE_SPLITS,
            )  # fmt: skip
        else:
            tl.store(pointers + dims[None, :], output.to(output_ptr.dtype.element_ty), mask=query_mask)
    else:
        tl.store(pointers + dims[None, :], output.to(output_ptr.dtype.element_ty), mask=query_mask)


def decode_attention(
    output: torch.Tensor,  # [num_tokens, num_heads, head_size], every element written
    query: torch.Tensor,  # [num_tokens, num_heads, head_size]
    key: torch.Tensor,  # [num_tokens, num_kv_heads, head_size], written to the cache here
    value: torch.Tensor,  # [num_tokens, num_kv_heads, head_size]
    kv_layer: torch.Tensor,  # [num_blocks, 2, block_size, num_kv_heads, head_size] (strided)
    query_start_loc: torch.Tensor,  # int32 [num_reqs + 1]
    seq_lens: torch.Tensor,  # int32 [num_reqs]
    block_table: torch.Tensor,  # int32 [num_reqs, max_blocks_per_req]
    slot_mapping: torch.Tensor,  # int64 [>= num_tokens]
    scratch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    rotary_tables: tuple[torch.Tensor, torch.Tensor] | None = None,
    *,
    num_reqs: int,
    num_splits: int,
    low_latency: bool,
    scale: float,
    sliding_window: int | None,
    soft_cap: float | None,
    tiles: DecodeTiles,
) -> None:
    """Write this step's K/V rows and attend, into `output`, in one launch. `scratch` holds the
    float32 partials and lses and the int32 arrival counters (zeros), flat and large enough,
    when num_splits > 1. `low_latency` picks the loop for a few rows
    (`launch_config.decode_low_latency`): K and V of a tile loaded together, the next pages
    prefetched, and one split for a sequence of up to SINGLE_SPLIT_KEYS keys. With
    `rotary_tables` (cos, signed sin: `FusedRotary`'s) the query and key rows arrive unrotated
    and are rotated here, each row at its request's newest position (seq_len - 1); then rows of
    no request are not written to the cache (padding)."""
    num_tokens, num_heads, head_size = query.shape
    num_kv_heads, block_size = kv_layer.shape[3], kv_layer.shape[2]
    if key.stride(-1) != 1:
        key = key.contiguous()
    if value.stride(-1) != 1:
        value = value.contiguous()
    assert kv_layer.stride(-1) == 1, "the KV cache's head dimension must be contiguous"
    partials, lses, arrivals = scratch
    if rotary_tables is not None:
        cos_cache, sin_cache = rotary_tables
        if cos_cache.shape != sin_cache.shape or cos_cache.shape[-1] != head_size:
            raise ValueError(
                f"rotary tables must both be [max_position, {head_size}], got "
                f"{list(cos_cache.shape)} and {list(sin_cache.shape)}"
            )
        cos_cache, sin_cache = cos_cache.contiguous(), sin_cache.contiguous()
    else:
        cos_cache = sin_cache = query  # unused without ROTARY
    if low_latency:
        tiles = low_latency_tiles(tiles, query.element_size())
    _decode_kernel[(max(num_reqs, num_tokens), num_kv_heads, num_splits)](
        query, key, value, kv_layer, output, partials, lses, arrivals, query_start_loc,
        seq_lens, block_table, slot_mapping, cos_cache, sin_cache, cos_cache.stride(0),
        scale, soft_cap or 0.0, sliding_window or 0, num_reqs, num_tokens,
        query.stride(0), query.stride(1), key.stride(0), key.stride(1),
        value.stride(0), value.stride(1), output.stride(0), output.stride(1),
        kv_layer.stride(0), kv_layer.stride(1), kv_layer.stride(2), kv_layer.stride(3),
        block_table.stride(0),
        GROUP_SIZE=num_heads // num_kv_heads,
        GROUP_ROWS=tiles.group_rows,
        HEAD_SIZE=head_size,
        HEAD_ROWS=tiles.head_rows,
        BLOCK_SIZE=block_size,
        BLOCK_N=tiles.block_n,
        USE_WINDOW=sliding_window is not None,
        SPLIT=num_splits > 1,
        MIN_SPLIT_KEYS=MIN_KEYS_PER_SPLIT,
        SINGLE_SPLIT_KEYS=SINGLE_SPLIT_KEYS if low_latency else 0,
        LOW_LATENCY=low_latency,
        SPLIT_ROWS=next_power_of_2(num_splits),
        MERGE_SPLITS=merge_splits_per_load(num_splits, tiles.head_rows),
        SOFT_CAP=soft_cap is not None,
        DOT_IEEE=query.dtype == torch.float32,
        ROTARY=rotary_tables is not None,
        num_warps=tiles.num_warps,
        num_stages=tiles.num_stages,
    )  # fmt: skip
