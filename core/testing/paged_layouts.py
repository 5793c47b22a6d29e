"""Random paged layouts for attention tests, and a dense (unpaged) oracle.

One step's inputs are drawn at random per request (query rows, and K/V for every position of
the sequence); the cached prefix, the positions before this step's query, is written into a
shuffled set of blocks with plain per-token indexing, independent of any backend's write path:

    kv_cache: [num_blocks, num_layers, 2, block_size, num_kv_heads, head_size]
    block 0 is the null block; every other block is owned by at most one request, in a random
    order, and a few blocks belong to nobody. Every byte starts random, so a backend that reads
    a slot it should not shows up as a mismatch.
"""

from __future__ import annotations

import math

import attrs
import torch

from tenon.spec.attention import AttentionBackendConfig, AttentionLayer, AttentionMetadata
from tenon.testing.paged_runner import build_metadata


@attrs.frozen(kw_only=True)
class PagedCase:
    """One step's random inputs in paged form, plus the dense tensors they came from."""

    kv_cache: torch.Tensor  # [num_blocks, num_layers, 2, block_size, num_kv_heads, head_size]
    block_tables: list[list[int]]
    query_lens: list[int]
    seq_lens: list[int]
    queries: list[torch.Tensor]  # per request [query_len, num_heads, head_size]
    keys: list[torch.Tensor]  # per request, every position [seq_len, num_kv_heads, head_size]
    values: list[torch.Tensor]


def make_case(
    *,
    query_lens: list[int],
    seq_lens: list[int],
    num_heads: int,
    num_kv_heads: int,
    head_size: int,
    block_size: int,
    num_layers: int,
    layer_index: int,
    seed: int,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> PagedCase:
    """Random Q/K/V (drawn on the CPU, so every device sees the same numbers), with the cached
    prefix of each request written into its shuffled blocks."""
    generator = torch.Generator().manual_seed(seed)
    blocks_needed = [math.ceil(seq_len / block_size) for seq_len in seq_lens]
    num_blocks = 1 + sum(blocks_needed) + 3  # null block, and a few blocks nobody owns
    kv_cache = torch.randn(
        num_blocks, num_layers, 2, block_size, num_kv_heads, head_size, generator=generator
    ).to(dtype)
    block_ids = (torch.randperm(num_blocks - 1, generator=generator) + 1).tolist()
    block_tables = []
    for count in blocks_needed:
        block_tables.append(block_ids[:count])
        block_ids = block_ids[count:]

    queries, keys, values = [], [], []
    for query_len, seq_len, blocks in zip(query_lens, seq_lens, block_tables, strict=True):
        queries.append(torch.randn(query_len, num_heads, head_size, generator=generator).to(dtype))
        key = torch.randn(seq_len, num_kv_heads, head_size, generator=generator).to(dtype)
        value = torch.randn(seq_len, num_kv_heads, head_size, generator=generator).to(dtype)
        keys.append(key)
        values.append(value)
        for position in range(seq_len - query_len):
            block, offset = blocks[position // block_size], position % block_size
            kv_cache[block, layer_index, 0, offset] = key[position]
            kv_cache[block, layer_index, 1, offset] = value[position]
    return PagedCase(
        kv_cache=kv_cache.to(device),
        block_tables=block_tables,
        query_lens=query_lens,
        seq_lens=seq_lens,
        queries=[query.to(device) for query in queries],
        keys=[key.to(device) for key in keys],
        values=[value.to(device) for value in values],
    )


def step_inputs(
    case: PagedCase, block_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, AttentionMetadata]:
    """Flattened query / new key / new value rows for the step, and its metadata, on the
    case's device: query [num_tokens, num_heads, head_size], key and value
    [num_tokens, num_kv_heads, head_size]."""
    metadata, _ = build_metadata(
        case.query_lens, case.seq_lens, case.block_tables, block_size, case.kv_cache.device
    )
    query = torch.cat(case.queries)
    lens = list(zip(case.query_lens, case.seq_lens, strict=True))
    key = torch.cat([k[s - q :] for k, (q, s) in zip(case.keys, lens, strict=True)])
    value = torch.cat([v[s - q :] for v, (q, s) in zip(case.values, lens, strict=True)])
    return query, key, value, metadata


def dense_attention(
    layer: AttentionLayer,
    query: torch.Tensor,  # [query_len, num_heads, head_size], the last query_len positions
    key: torch.Tensor,  # [seq_len, num_kv_heads, head_size]
    value: torch.Tensor,  # [seq_len, num_kv_heads, head_size]
) -> torch.Tensor:  # [query_len, num_heads, head_size]
    """Unpaged attention: SDPA with an explicit mask, or plain math when logits are soft-capped."""
    query_len, seq_len = query.shape[0], key.shape[0]
    group = layer.num_heads // layer.num_kv_heads
    q = query.float().transpose(0, 1)  # [num_heads, query_len, head_size]
    k = key.float().repeat_interleave(group, dim=1).transpose(0, 1)
    v = value.float().repeat_interleave(group, dim=1).transpose(0, 1)
    query_positions = torch.arange(seq_len - query_len, seq_len, device=query.device)[:, None]
    key_positions = torch.arange(seq_len, device=query.device)[None, :]
    mask = key_positions <= query_positions
    if layer.sliding_window is not None:
        mask &= key_positions > query_positions - layer.sliding_window
    if layer.logits_soft_cap is None:
        out = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, scale=layer.scale
        )
    else:
        cap = layer.logits_soft_cap
        scores = cap * torch.tanh((q @ k.transpose(1, 2)) * layer.scale / cap)
        out = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1) @ v
    return out.transpose(0, 1).to(query.dtype)


def backend_config(
    block_size: int, num_layers: int, *, device: str = "cpu", dtype: str = "float32"
) -> AttentionBackendConfig:
    """A backend config roomy enough for every layout these builders make."""
    return AttentionBackendConfig(
        device=device,
        dtype=dtype,
        block_size=block_size,
        num_layers=num_layers,
        max_num_reqs=8,
        max_num_tokens=256,
        max_model_len=256,
    )


def make_layer(
    *,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    head_size: int = 8,
    layer_index: int = 0,
    sliding_window: int | None = None,
    logits_soft_cap: float | None = None,
) -> AttentionLayer:
    return AttentionLayer(
        layer_index=layer_index,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        head_size=head_size,
        scale=head_size**-0.5,
        sliding_window=sliding_window,
        logits_soft_cap=logits_soft_cap,
    )
