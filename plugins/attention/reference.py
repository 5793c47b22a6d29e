"""The reference attention backend: plain torch on any device, written for clarity.

It is the oracle every faster backend is compared against, so it favours obvious code over
speed: one Python loop over the requests of a step, vectorised tensor code inside each request,
scores and softmax in float32.

For request r with query length q and sequence length s (`seq_lens[r]`, which already counts
this step's tokens), query row j sits at absolute position `s - q + j` and attends to the
request's cached positions `p` with

    p <= s - q + j                          (causal)
    p >  s - q + j - sliding_window         (only with a sliding window)

Cached positions are read back through the block table, so the tokens written this step and the
ones from earlier steps (or a prefix-cache hit) go through the same path:

    token p of request r -> kv_layer[block_table[r, p // block_size], :, p % block_size]
"""

from __future__ import annotations

import torch

from tenon.spec.attention import AttentionBackend, AttentionLayer, AttentionMetadata

_KEY = 0
_VALUE = 1


class ReferenceAttentionBackend(AttentionBackend):
    """Paged attention in plain torch; batch invariant because each request is computed alone."""

    def forward(
        self,
        layer: AttentionLayer,
        query: torch.Tensor,  # [num_tokens, num_heads, head_size]
        key: torch.Tensor,  # [num_tokens, num_kv_heads, head_size]
        value: torch.Tensor,  # [num_tokens, num_kv_heads, head_size]
        kv_layer: torch.Tensor,  # [num_blocks, 2, block_size, num_kv_heads, head_size] (strided)
        metadata: AttentionMetadata,
    ) -> torch.Tensor:  # [num_tokens, num_heads, head_size]
        write_kv(key, value, kv_layer, metadata.slot_mapping[: key.shape[0]])

        output = torch.zeros_like(query)
        # One host copy of the per-request lengths for the whole step.
        query_starts = metadata.query_start_loc[: metadata.num_reqs + 1].tolist()
        seq_lens = metadata.seq_lens[: metadata.num_reqs].tolist()
        for request_index in range(metadata.num_reqs):
            query_start = query_starts[request_index]
            query_end = query_starts[request_index + 1]
            if query_end == query_start:
                continue
            cached_key, cached_value = gather_kv(
                kv_layer, metadata.block_table[request_index], seq_lens[request_index]
            )
            output[query_start:query_end] = attend(
                layer,
                query[query_start:query_end],
                cached_key,
                cached_value,
                causal=metadata.causal,
            ).to(query.dtype)
        return output


def write_kv(
    key: torch.Tensor,  # [num_tokens, num_kv_heads, head_size]
    value: torch.Tensor,  # [num_tokens, num_kv_heads, head_size]
    kv_layer: torch.Tensor,  # [num_blocks, 2, block_size, num_kv_heads, head_size] (strided)
    slot_mapping: torch.Tensor,  # int64 [num_tokens]
) -> None:
    """Scatter this step's K/V rows into their slots (padding rows land in the null block)."""
    block_size = kv_layer.shape[2]
    block_ids = torch.div(slot_mapping, block_size, rounding_mode="floor")
    offsets = slot_mapping % block_size
    # Two index tensors address (block, offset) pairs through the view's strides, so the write
    # lands in the shared allocation even though blocks of one layer are not contiguous.
    kv_layer[block_ids, _KEY, offsets] = key.to(kv_layer.dtype)
    kv_layer[block_ids, _VALUE, offsets] = value.to(kv_layer.dtype)


def gather_kv(
    kv_layer: torch.Tensor,  # [num_blocks, 2, block_size, num_kv_heads, head_size] (strided)
    block_table_row: torch.Tensor,  # int32 [max_blocks_per_req]
    seq_len: int,
) -> tuple[torch.Tensor, torch.Tensor]:  # 2 x [seq_len, num_kv_heads, head_size]
    """Read a request's first `seq_len` cached tokens, in order, through its block table."""
    block_size = kv_layer.shape[2]
    num_blocks = -(-seq_len // block_size)
    block_ids = block_table_row[:num_blocks].long()
    # blocks: [num_blocks, 2, block_size, num_kv_heads, head_size] (a copy, contiguous)
    blocks = kv_layer[block_ids]
    num_kv_heads, head_size = kv_layer.shape[3], kv_layer.shape[4]
    cached_key = blocks[:, _KEY].reshape(num_blocks * block_size, num_kv_heads, head_size)
    cached_value = blocks[:, _VALUE].reshape(num_blocks * block_size, num_kv_heads, head_size)
    return cached_key[:seq_len], cached_value[:seq_len]


def attend(
    layer: AttentionLayer,
    query: torch.Tensor,  # [query_len, num_heads, head_size]
    key: torch.Tensor,  # [seq_len, num_kv_heads, head_size]
    value: torch.Tensor,  # [seq_len, num_kv_heads, head_size]
    *,
    causal: bool = True,
) -> torch.Tensor:  # float32 [query_len, num_heads, head_size]
    """Attention of one request's query rows (the last `query_len` positions) over its keys."""
    query_len, num_heads, _ = query.shape
    seq_len, num_kv_heads, _ = key.shape
    if num_heads % num_kv_heads != 0:
        raise ValueError(
            f"num_heads ({num_heads}) must be a multiple of num_kv_heads ({num_kv_heads})"
        )
    group_size = num_heads // num_kv_heads
    # Query head h reads KV head h // group_size.
    key = key.float().repeat_interleave(group_size, dim=1)  # [seq_len, num_heads, head_size]
    value = value.float().repeat_interleave(group_size, dim=1)

    # scores: [num_heads, query_len, seq_len]
    scores = torch.einsum("qhd,khd->hqk", query.float(), key) * layer.scale
    if layer.logits_soft_cap is not None:
        scores = layer.logits_soft_cap * torch.tanh(scores / layer.logits_soft_cap)

    query_positions = torch.arange(seq_len - query_len, seq_len, device=query.device)[:, None]
    key_positions = torch.arange(seq_len, device=query.device)[None, :]
    # allowed: [query_len, seq_len]
    allowed = torch.ones(query_len, seq_len, dtype=torch.bool, device=query.device)
    if causal:
        allowed &= key_positions <= query_positions
    if layer.sliding_window is not None:
        allowed &= key_positions > query_positions - layer.sliding_window
    scores = scores.masked_fill(~allowed, float("-inf"))

    probs = torch.softmax(scores, dim=-1)
    # output: [query_len, num_heads, head_size]
    return torch.einsum("hqk,khd->qhd", probs, value)
