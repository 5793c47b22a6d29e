"""Tile sizes, warps and split counts of the Triton attention kernels.

Pure Python, chosen from static things only (layer shape, dtype, block size, request count, the
model length and the number of SMs), never from sequence lengths: a captured graph replays the
launches it recorded, so a launch shape that followed the data would be stale on replay.
"""

from __future__ import annotations

import attrs

MAX_NUM_SPLITS = 64
# A split shorter than this saves less in the decode kernel than its share of the reduction costs.
MIN_KEYS_PER_SPLIT = 128
# Launches of at most this many rows (decode-1 and other tiny batches) are latency-bound: their
# programs load K and V of a tile together and prefetch the next tile's pages by hand, and a
# sequence of up to SINGLE_SPLIT_KEYS keys takes one split (merging splits cost about 4.6 us of
# atomics and reloads at 256 keys, more than the loop it shortens). Their 16-bit tiles are
# longer (fewer round trips a split) where a K row is at most WIDE_ROW_BYTES. Measured on an
# H200, llama-3.1-8b layer, bf16, batch 1 (`results/decode1-ab-session4-h200.txt`): 256 keys
# 13.0 -> 6.8 us, 512 keys 13.1 -> 9.5 us; double-buffering K/V by hand and 8 warps were slower.
LOW_LATENCY_MAX_ROWS = 4
SINGLE_SPLIT_KEYS = 512
LOW_LATENCY_BLOCK_N = 128
LOW_LATENCY_NUM_WARPS = 4
# Decode programs wanted per SM: two waves hide the tail of uneven sequence lengths.
PROGRAMS_PER_SM = 2
# float32 partial elements the split merge loads at once for one head (64 registers a thread at
# 4 warps): 64 splits of head size 128, or 32 of head size 256.
MERGE_TILE_ELEMENTS = 8192
# Bytes of one K row (head_size elements) above which tiles get fewer rows, so that K and V
# tiles of every pipeline stage still fit in shared memory and registers (head size 256).
WIDE_ROW_BYTES = 256


def next_power_of_2(value: int) -> int:
    return 1 << max(value - 1, 0).bit_length()


def cdiv(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


@attrs.frozen(kw_only=True)
class DecodeTiles:
    """One decode program: every query head of one KV group, for a range of keys."""

    group_rows: int  # query heads of the group, padded to a power of two >= 16 (tl.dot's M)
    head_rows: int  # head_size padded to a power of two >= 16
    block_n: int  # keys per loop iteration (several pages when blocks are small)
    num_warps: int
    num_stages: int


@attrs.frozen(kw_only=True)
class PrefillTiles:
    """One prefill program: `block_q` query tokens x the group's query heads, as `block_m` rows."""

    block_m: int  # query rows per program; row m is token m // group_size, head m % group_size
    block_q: int  # query tokens per program (block_m // group_size)
    head_rows: int
    block_n: int
    num_warps: int
    num_stages: int


def decode_tiles(*, head_size: int, group_size: int, element_bytes: int) -> DecodeTiles:
    """Measured spill-free on sm_90 (ptxas -v) for head sizes 64..256 and groups 1..16."""
    head_rows = max(16, next_power_of_2(head_size))
    group_rows = max(16, next_power_of_2(group_size))
    if element_bytes >= 4:  # float32 dots run on FMA units and hold their tiles in registers
        block_n = 32 if head_rows <= 128 else 16
        return DecodeTiles(
            group_rows=group_rows, head_rows=head_rows, block_n=block_n, num_warps=8, num_stages=2
        )
    wide = head_rows * element_bytes > WIDE_ROW_BYTES
    return DecodeTiles(
        group_rows=group_rows,
        head_rows=head_rows,
        block_n=32 if wide else 64,
        num_warps=4,
        num_stages=2 if wide else 3,
    )


def prefill_tiles(
    *, head_size: int, group_size: int, element_bytes: int, max_query_len: int
) -> PrefillTiles:
    """Measured spill-free on sm_90 (ptxas -v) for head sizes 64..256 and groups 1..16."""
    head_rows = max(16, next_power_of_2(head_size))
    if element_bytes >= 4:
        block_m, block_n, num_stages = 32, 16, 2
    elif head_rows * element_bytes > WIDE_ROW_BYTES:
        block_m, block_n, num_stages = 64, 32, 2
    else:
        block_m, block_n, num_stages = 128, 64, 3
    # Short queries (chunks beside decodes) waste fewer rows in a smaller tile.
    block_m = min(block_m, max(16, next_power_of_2(max_query_len * group_size)))
    block_m = max(block_m, next_power_of_2(group_size))  # one token's heads fit one tile
    return PrefillTiles(
        block_m=block_m,
        block_q=block_m // group_size,
        head_rows=head_rows,
        block_n=block_n,
        num_warps=8 if block_m >= 64 or element_bytes >= 4 else 4,
        num_stages=num_stages,
    )


def decode_num_splits(
    *, num_reqs: int, num_kv_heads: int, max_model_len: int, num_sms: int | None
) -> int:
    """How many key ranges each (request, KV head) is split into: enough programs to fill the
    GPU twice over, no split shorter than MIN_KEYS_PER_SPLIT at the model length, at most
    MAX_NUM_SPLITS. One where the SM count is unknown (the CPU interpreter)."""
    if num_sms is None:
        return 1
    wanted = cdiv(PROGRAMS_PER_SM * num_sms, max(1, num_reqs * num_kv_heads))
    by_length = cdiv(max_model_len, MIN_KEYS_PER_SPLIT)
    return max(1, min(wanted, by_length, MAX_NUM_SPLITS))


def low_latency_tiles(tiles: DecodeTiles, element_bytes: int) -> DecodeTiles:
    """The decode tiles of a low-latency launch (`decode_low_latency`)."""
    if element_bytes != 2 or tiles.head_rows * element_bytes > WIDE_ROW_BYTES:
        return tiles
    return attrs.evolve(
        tiles,
        block_n=max(tiles.block_n, LOW_LATENCY_BLOCK_N),
        num_warps=LOW_LATENCY_NUM_WARPS,
    )


def decode_low_latency(num_rows: int) -> bool:
    """Whether a decode launch of `num_rows` rows (requests, or padded tokens) takes the
    latency-bound loop and one split per sequence of up to SINGLE_SPLIT_KEYS keys."""
    return num_rows <= LOW_LATENCY_MAX_ROWS


def merge_splits_per_load(num_splits: int, head_rows: int) -> int:
    """Splits whose partials the merge loads at once for one head: every split (padded to a power
    of two) unless that would exceed MERGE_TILE_ELEMENTS."""
    return min(next_power_of_2(num_splits), max(1, MERGE_TILE_ELEMENTS // head_rows))
