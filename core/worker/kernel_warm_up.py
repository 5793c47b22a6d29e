"""Compile at start-up what a step of each query-length class launches, so that no request pays
for a compile while the engine serves.

Kernels that specialise on a step's longest query (the Triton prefill kernel picks its tile
height from it) are compiled on first use; on an H200 each variant cost about a second in the
middle of the first mixed step of a run (`benchmarks/diagnostics/step_timeline.py`, cold against
warm). Decode steps need no warm-up: their graphs are captured at start-up. This runs one forward
per query length 2, 4, 8, ... up to 128 (or the longest step), one prompt each, on KV blocks
that no request holds yet, plus the logits of its last row.
"""

from __future__ import annotations

from typing import Any

import torch

from tenon.spec.attention import AttentionBackend, ForwardContext
from tenon.worker.memory_profile import synthetic_step_inputs

LONGEST_WARM_UP_QUERY = 128  # past this, every backend's prefill tiles are at their largest


def warm_up_query_lengths(max_query_len: int) -> list[int]:
    """2, 4, 8, ... up to min(LONGEST_WARM_UP_QUERY, max_query_len)."""
    lengths, length = [], 2
    while length <= min(LONGEST_WARM_UP_QUERY, max_query_len):
        lengths.append(length)
        length *= 2
    return lengths


def warm_up_prefill(
    *,
    model: Any,
    attention_backend: AttentionBackend,
    kv_layers: list[torch.Tensor],
    num_kv_blocks: int,
    block_size: int,
    vocab_size: int,
    device: torch.device,
    max_query_len: int,
) -> list[int]:
    """One forward (and its last row's logits) per warm-up query length that fits the cache;
    returns the lengths run. Writes only KV blocks 1.. (block 0 is the null block), which no
    request holds before the engine starts."""
    lengths = [length for length in warm_up_query_lengths(max_query_len)
               if -(-length // block_size) < num_kv_blocks]
    for length in lengths:
        metadata, input_ids, positions, last_rows = synthetic_step_inputs(
            [length], block_size, vocab_size, device)
        attention_backend.prepare(metadata)
        context = ForwardContext(
            attention_metadata=metadata, attention_backend=attention_backend, kv_layers=kv_layers)
        hidden = model.forward(input_ids, positions, context)
        model.compute_logits(hidden[last_rows])
    return lengths
