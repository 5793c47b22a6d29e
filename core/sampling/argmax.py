"""Argmax over the vocabulary in two stages, for the few-row batches of low-latency decoding.

`logits.argmax(dim=-1)` reduces each row in one thread block: at batch 1 a 128256-token row
keeps one SM busy for tens of microseconds. Viewing the row as C chunks gives C * num_rows
reductions that spread over the GPU, then one short reduction over the chunk maxima:

    row     [ chunk 0: L tokens | chunk 1 | ... | chunk C-1 ]        vocab_size = C * L
    stage 1 chunk_max[c], chunk_index[c]  = max over chunk c         # [num_rows, C]
    stage 2 best_chunk                     = argmax over chunk_max    # [num_rows]
    token   best_chunk * L + chunk_index[best_chunk]

The result equals torch.argmax exactly, ties included: both stages take the first maximal index
(documented for torch.max(dim) and torch.argmax), so stage 2 picks the first chunk holding the
maximum and stage 1 its first position there, which is the row's first maximal position. NaN
counts as the maximum in torch's reductions, so the first NaN wins here as it does there.
"""

from __future__ import annotations

import torch

# Chunk counts tried in order: 128 divides the common vocabularies (128256 = 128 x 1002,
# 151936 = 128 x 1187, 49152 = 128 x 384, 32000 = 128 x 250).
CHUNK_COUNTS = (128, 64, 32)
# From this many rows on, one block per row already fills the GPU.
MAX_CHUNKED_ROWS = 32
# Below this vocabulary size one block per row is already short.
MIN_CHUNKED_VOCAB_SIZE = 16384


def num_vocab_chunks(num_rows: int, vocab_size: int) -> int | None:
    """How many chunks `vocab_argmax` splits each row into; None for a plain argmax."""
    if num_rows >= MAX_CHUNKED_ROWS or vocab_size < MIN_CHUNKED_VOCAB_SIZE:
        return None
    return next((count for count in CHUNK_COUNTS if vocab_size % count == 0), None)


def vocab_argmax(logits: torch.Tensor) -> torch.Tensor:
    """The index of each row's first maximal element, as `logits.argmax(dim=-1)`.

    logits: [num_rows, vocab_size] -> int64 [num_rows]
    """
    assert logits.dim() == 2, f"logits must be [num_rows, vocab_size], got {tuple(logits.shape)}"
    num_rows, vocab_size = logits.shape
    num_chunks = num_vocab_chunks(num_rows, vocab_size)
    if num_chunks is None or logits.stride(-1) != 1:
        return logits.argmax(dim=-1)
    chunk_len = vocab_size // num_chunks
    # chunks: [num_rows, num_chunks, chunk_len], a view (the last dimension is contiguous)
    chunks = logits.view(num_rows, num_chunks, chunk_len)
    chunk_max, chunk_index = chunks.max(dim=-1)  # [num_rows, num_chunks] each
    best_chunk = chunk_max.argmax(dim=-1, keepdim=True)  # [num_rows, 1]
    offset = chunk_index.gather(-1, best_chunk)  # [num_rows, 1]
    return offset.add_(best_chunk, alpha=chunk_len).squeeze(-1)
