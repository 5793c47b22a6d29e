# mypy: allow-untyped-defs
"""The end of a split-KV decode, inside the decode launch: the last split to finish merges.

Every split program of (request r, KV head g) writes its normalised partial output and its
log-sum-exp (base 2) for the group's query heads to scratch, then counts itself in with an
atomic add on the arrival counter of (r, g). S is the number of splits the request uses (the
decode kernel's `active_splits`, at most the launch's num_splits, which stays the scratch
stride so requests with different S never share rows). The program that reads S - 1 back
arrives last:
every other split's partial is visible to it, so it merges them all, writes the output rows and
puts the counter back to 0 for the next launch (graph replays included). Scratch layout:

    partials  float32 [num_reqs, num_heads, num_splits, head_size]   head h = g * group + i
    lses      float32 [num_reqs, num_heads, num_splits]
    arrivals  int32   [num_reqs, num_kv_heads]                       0 between launches

    out = sum_s 2^(lse_s - max) * partial_s / sum_s 2^(lse_s - max)

The merge reads the splits in their index order whichever program performs it, so the output
does not depend on which split finished last. Memory ordering on the GPU: a barrier orders
every thread's partial stores before the one thread that issues the atomic (Triton issues a
scalar atomic from one thread); the atomic is acq_rel at GPU scope, so its release publishes
those stores and the last program's acquire sees them; the merge loads bypass L1 (".cg"), which
is not coherent across SMs. The Triton interpreter runs programs one after another, so there the
last program of the grid merges.
"""

from __future__ import annotations

import triton
import triton.language as tl

# Heads of one group merged in an unrolled loop (independent loads overlap); longer groups loop.
MAX_UNROLLED_HEADS: tl.constexpr = tl.constexpr(8)


@triton.jit
def _merge_head(
    output_ptr, partial_ptr, lse_ptr, row, head, head_index, num_splits, num_active,
    output_stride_token, output_stride_head, HEAD_SIZE: tl.constexpr, HEAD_ROWS: tl.constexpr,
    SPLIT_ROWS: tl.constexpr, MERGE_SPLITS: tl.constexpr,
):  # fmt: skip
    """One query head's output row from its first `num_active` splits' partials (scratch row
    `head_index`, `num_splits` entries a row)."""
    dims = tl.arange(0, HEAD_ROWS)
    dim_mask = dims < HEAD_SIZE
    splits = tl.arange(0, SPLIT_ROWS)
    lse_row = lse_ptr + head_index * num_splits
    lse = tl.load(
        lse_row + splits, mask=splits < num_active, other=float("-inf"), cache_modifier=".cg"
    )  # [SPLIT_ROWS]
    max_lse = tl.max(lse, 0)
    max_lse = tl.where(max_lse == float("-inf"), 0.0, max_lse)  # every split empty: zeros
    total = tl.sum(tl.exp2(lse - max_lse), 0)
    merged = tl.zeros([HEAD_ROWS], dtype=tl.float32)
    for first in tl.static_range(0, SPLIT_ROWS, MERGE_SPLITS):
        chunk = first + tl.arange(0, MERGE_SPLITS)
        chunk_mask = chunk < num_active
        weights = tl.exp2(
            tl.load(lse_row + chunk, mask=chunk_mask, other=float("-inf"), cache_modifier=".cg")
            - max_lse
        )  # [MERGE_SPLITS]
        partial = tl.load(
            partial_ptr + (head_index * num_splits + chunk)[:, None] * HEAD_SIZE + dims[None, :],
            mask=chunk_mask[:, None] & dim_mask[None, :],
            other=0.0,
            cache_modifier=".cg",
        )  # [MERGE_SPLITS, HEAD_ROWS]
        merged += tl.sum(partial * weights[:, None], 0)
    output = merged / tl.where(total == 0.0, 1.0, total)
    pointers = output_ptr + row * output_stride_token + head * output_stride_head + dims
    tl.store(pointers, output.to(output_ptr.dtype.element_ty), mask=dim_mask)


@triton.jit
def publish_split(
    output_ptr, partial_ptr, lse_ptr, arrival_ptr, partial, lse, row, request, kv_head,
    num_kv_heads, split, num_splits, num_active, output_stride_token, output_stride_head,
    GROUP_SIZE: tl.constexpr, GROUP_ROWS: tl.constexpr, HEAD_SIZE: tl.constexpr,
    HEAD_ROWS: tl.constexpr, SPLIT_ROWS: tl.constexpr, MERGE_SPLITS: tl.constexpr,
):  # fmt: skip
    """Store this split's partial ([GROUP_ROWS, HEAD_ROWS]) and lse ([GROUP_ROWS]) of (request,
    kv_head), count it in, and merge the request's `num_active` splits into `output` if it is the
    last of them to arrive."""
    group = tl.arange(0, GROUP_ROWS)
    head_mask = group < GROUP_SIZE
    dims = tl.arange(0, HEAD_ROWS)
    first_head = kv_head * GROUP_SIZE
    first_head_index = request.to(tl.int64) * num_kv_heads * GROUP_SIZE + first_head
    head_index = first_head_index + group  # [GROUP_ROWS] scratch rows of the group's heads
    tl.store(lse_ptr + head_index * num_splits + split, lse, mask=head_mask)
    partial_row = (head_index * num_splits + split) * HEAD_SIZE
    tl.store(
        partial_ptr + partial_row[:, None] + dims[None, :],
        partial,
        mask=head_mask[:, None] & (dims[None, :] < HEAD_SIZE),
    )
    tl.debug_barrier()  # every thread's stores before the atomic (one thread issues it)
    arrival = arrival_ptr + request * num_kv_heads + kv_head
    if tl.atomic_add(arrival, 1, sem="acq_rel") == num_active - 1:
        if GROUP_SIZE <= MAX_UNROLLED_HEADS:
            for offset in tl.static_range(GROUP_SIZE):
                _merge_head(
                    output_ptr, partial_ptr, lse_ptr, row, first_head + offset,
                    first_head_index + offset, num_splits, num_active, output_stride_token,
                    output_stride_head, HEAD_SIZE, HEAD_ROWS, SPLIT_ROWS, MERGE_SPLITS,
                )  # fmt: skip
        else:
            for offset in range(GROUP_SIZE):
                _merge_head(
                    output_ptr, partial_ptr, lse_ptr, row, first_head + offset,
                    first_head_index + offset, num_splits, num_active, output_stride_token,
                    output_stride_head, HEAD_SIZE, HEAD_ROWS, SPLIT_ROWS, MERGE_SPLITS,
                )  # fmt: skip
        tl.store(arrival, 0)  # no other program touches it again in this launch
