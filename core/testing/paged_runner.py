"""A small paged model runner for tests: real KV cache layout, real metadata, greedy decoding.

It drives a `ModelArchitecture` the way the engine's model runner does (one allocation for the
KV cache, block tables, slot mapping, `ForwardContext` per step), without a scheduler: all
prompts prefill together (optionally in chunks), then all requests decode together. Blocks are
handed out in a shuffled order so no request's blocks are contiguous, which is what catches
kernels that assume contiguity.

    kv_cache: [num_blocks, num_layers, 2, block_size, num_kv_heads, head_size]
    kv_layers[i] = kv_cache[:, i]   (strided: [num_blocks, 2, block_size, num_kv_heads, head_size])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
import torch

from tenon.spec.attention import (
    NULL_BLOCK_ID,
    AttentionBackend,
    AttentionBackendConfig,
    AttentionMetadata,
    ForwardContext,
)
from tenon.spec.model import KVCacheSpec

BackendFactory = Callable[[AttentionBackendConfig], AttentionBackend]


@attrs.frozen(kw_only=True)
class PagedKVCache:
    """The single KV allocation and its per-layer strided views."""

    kv_cache: torch.Tensor  # [num_blocks, num_layers, 2, block_size, num_kv_heads, head_size]
    kv_layers: tuple[torch.Tensor, ...]  # per layer: kv_cache[:, layer]

    @classmethod
    def allocate(
        cls,
        kv_spec: KVCacheSpec,
        num_blocks: int,
        block_size: int,
        dtype: torch.dtype,
        device: torch.device | str,
    ) -> PagedKVCache:
        kv_cache = torch.zeros(
            num_blocks,
            kv_spec.num_layers,
            kv_spec.num_components,
            block_size,
            kv_spec.num_kv_heads,
            kv_spec.head_size,
            dtype=dtype,
            device=device,
        )
        kv_layers = tuple(kv_cache[:, layer] for layer in range(kv_spec.num_layers))
        return cls(kv_cache=kv_cache, kv_layers=kv_layers)


def build_metadata(
    query_lens: Sequence[int],
    seq_lens: Sequence[int],
    block_tables: Sequence[Sequence[int]],
    block_size: int,
    device: torch.device | str,
) -> tuple[AttentionMetadata, torch.Tensor]:
    """Metadata for one step; request r computes the last `query_lens[r]` of `seq_lens[r]` tokens.

    Returns the metadata and its slot mapping (int64 [sum(query_lens)]), also on the metadata.
    """
    if not len(query_lens) == len(seq_lens) == len(block_tables):
        raise ValueError(
            f"query_lens, seq_lens and block_tables must have one entry per request, got "
            f"{len(query_lens)}, {len(seq_lens)} and {len(block_tables)}"
        )
    slots: list[int] = []
    for query_len, seq_len, blocks in zip(query_lens, seq_lens, block_tables, strict=True):
        if not 0 <= query_len <= seq_len:
            raise ValueError(f"query length {query_len} must be within 0..{seq_len}")
        if len(blocks) * block_size < seq_len:
            raise ValueError(
                f"{len(blocks)} blocks of {block_size} tokens cannot hold {seq_len} tokens"
            )
        for position in range(seq_len - query_len, seq_len):
            slots.append(blocks[position // block_size] * block_size + position % block_size)

    max_blocks_per_req = max((len(blocks) for blocks in block_tables), default=0)
    padded_tables = [
        list(blocks) + [NULL_BLOCK_ID] * (max_blocks_per_req - len(blocks))
        for blocks in block_tables
    ]
    query_start_loc = [0]
    for query_len in query_lens:
        query_start_loc.append(query_start_loc[-1] + query_len)

    slot_mapping = torch.tensor(slots, dtype=torch.int64, device=device)
    metadata = AttentionMetadata(
        query_start_loc=torch.tensor(query_start_loc, dtype=torch.int32, device=device),
        seq_lens=torch.tensor(list(seq_lens), dtype=torch.int32, device=device),
        block_table=torch.tensor(padded_tables, dtype=torch.int32, device=device).reshape(
            len(block_tables), max_blocks_per_req
        ),
        slot_mapping=slot_mapping,
        max_query_len=max(query_lens, default=0),
        max_seq_len=max(seq_lens, default=0),
        num_reqs=len(query_lens),
        num_actual_tokens=len(slots),
    )
    return metadata, slot_mapping


def greedy_generate(
    model: Any,  # a ModelArchitecture (torch.nn.Module) with loaded weights
    prompts: list[list[int]],
    max_new_tokens: int,
    *,
    block_size: int = 4,
    backend: BackendFactory | None = None,
    prefill_chunk: int | None = None,
) -> list[list[int]]:
    """Greedy continuation of every prompt (exactly `max_new_tokens` each, no stop tokens).

    `backend` builds the attention backend from its config (an `AttentionBackend` subclass
    works); the reference backend is used when it is None. `prefill_chunk` caps the prompt
    tokens each request computes per prefill step.
    """
    if any(not prompt for prompt in prompts):
        raise ValueError("every prompt needs at least one token")
    if prefill_chunk is not None and prefill_chunk < 1:
        raise ValueError(f"prefill_chunk must be at least 1, got {prefill_chunk}")
    if max_new_tokens < 1 or not prompts:
        return [[] for _ in prompts]

    max_lens = [len(prompt) + max_new_tokens for prompt in prompts]
    kv, block_tables, attention_backend, device = _paged_setup(model, max_lens, block_size, backend)

    tokens = [list(prompt) for prompt in prompts]
    num_computed = [0] * len(prompts)
    with torch.inference_mode():
        while any(num_computed[r] < len(prompts[r]) for r in range(len(prompts))):
            # Prefill: every request with prompt left takes its next chunk.
            step: dict[int, int] = {}
            for r, prompt in enumerate(prompts):
                remaining = len(prompt) - num_computed[r]
                if remaining > 0:
                    step[r] = remaining if prefill_chunk is None else min(prefill_chunk, remaining)
            sampled = _run_step(
                model, attention_backend, kv, tokens, num_computed, step, block_tables, device
            )
            for r, token in sampled.items():
                if num_computed[r] == len(prompts[r]):
                    tokens[r].append(token)
        for _ in range(max_new_tokens - 1):
            step = {r: 1 for r in range(len(prompts))}
            sampled = _run_step(
                model, attention_backend, kv, tokens, num_computed, step, block_tables, device
            )
            for r, token in sampled.items():
                tokens[r].append(token)
    return [tokens[r][len(prompts[r]) :] for r in range(len(prompts))]


def prefill_logits(
    model: Any,  # a ModelArchitecture (torch.nn.Module) with loaded weights
    prompts: list[list[int]],
    *,
    block_size: int = 4,
    backend: BackendFactory | None = None,
) -> list[torch.Tensor]:  # per prompt: float32 [prompt_len, vocab_size]
    """The logits of every prompt position, all prompts prefilled together in one step."""
    if any(not prompt for prompt in prompts):
        raise ValueError("every prompt needs at least one token")
    lens = [len(prompt) for prompt in prompts]
    kv, block_tables, attention_backend, device = _paged_setup(model, lens, block_size, backend)
    metadata, _ = build_metadata(lens, lens, block_tables, block_size, device)
    context = ForwardContext(
        attention_metadata=metadata, attention_backend=attention_backend, kv_layers=kv.kv_layers
    )
    input_ids = torch.tensor([t for prompt in prompts for t in prompt], device=device)
    positions = torch.cat([torch.arange(length, device=device) for length in lens])
    with torch.inference_mode():
        attention_backend.prepare(metadata)
        hidden = model(input_ids, positions, context)  # [num_tokens, hidden_size]
        logits = model.compute_logits(hidden)  # float32 [num_tokens, vocab_size]
    return list(logits.split(lens))


def _paged_setup(
    model: Any, max_lens: list[int], block_size: int, backend: BackendFactory | None
) -> tuple[PagedKVCache, list[list[int]], AttentionBackend, torch.device]:
    """The KV cache, shuffled block tables for sequences up to `max_lens`, and the backend."""
    first_param = next(model.parameters())
    device, model_dtype = first_param.device, first_param.dtype
    kv_spec: KVCacheSpec = model.kv_cache_spec()
    kv_dtype = getattr(torch, kv_spec.dtype, model_dtype)
    blocks_per_request = [-(-max_len // block_size) for max_len in max_lens]
    num_blocks = 1 + sum(blocks_per_request)  # block 0 is the null block
    kv = PagedKVCache.allocate(kv_spec, num_blocks, block_size, kv_dtype, device)

    generator = torch.Generator().manual_seed(0)
    shuffled = (torch.randperm(num_blocks - 1, generator=generator) + 1).tolist()
    block_tables: list[list[int]] = []
    for count in blocks_per_request:
        block_tables.append(shuffled[:count])
        shuffled = shuffled[count:]

    if backend is None:
        from tenon.plugins.attention.reference import ReferenceAttentionBackend

        backend = ReferenceAttentionBackend
    attention_backend = backend(
        AttentionBackendConfig(
            device=str(device),
            dtype=str(kv_dtype).removeprefix("torch."),
            block_size=block_size,
            num_layers=kv_spec.num_layers,
            max_num_reqs=len(max_lens),
            max_num_tokens=sum(max_lens),
            max_model_len=max(max_lens),
        )
    )
    return kv, block_tables, attention_backend, device


def _run_step(
    model: Any,
    attention_backend: AttentionBackend,
    kv: PagedKVCache,
    tokens: list[list[int]],
    num_computed: list[int],
    step: dict[int, int],  # request index -> tokens computed this step
    block_tables: list[list[int]],
    device: torch.device,
) -> dict[int, int]:
    """Run one forward over `step`'s tokens; return each request's argmax after its last row.

    Advances `num_computed` in place.
    """
    requests = sorted(step)
    query_lens = [step[r] for r in requests]
    seq_lens = [num_computed[r] + step[r] for r in requests]
    block_size = kv.kv_cache.shape[3]
    metadata, _ = build_metadata(
        query_lens, seq_lens, [block_tables[r] for r in requests], block_size, device
    )
    input_ids: list[int] = []
    positions: list[int] = []
    for r, seq_len, query_len in zip(requests, seq_lens, query_lens, strict=True):
        input_ids.extend(tokens[r][seq_len - query_len : seq_len])
        positions.extend(range(seq_len - query_len, seq_len))
    context = ForwardContext(
        attention_metadata=metadata, attention_backend=attention_backend, kv_layers=kv.kv_layers
    )
    attention_backend.prepare(metadata)
    # hidden: [num_tokens, hidden_size]
    hidden = model(
        torch.tensor(input_ids, dtype=torch.int64, device=device),
        torch.tensor(positions, dtype=torch.int64, device=device),
        context,
    )
    last_rows = metadata.query_start_loc[1:].long() - 1  # [num_reqs]
    logits = model.compute_logits(hidden[last_rows])  # float32 [num_reqs, vocab_size]
    next_tokens = logits.argmax(dim=-1).tolist()
    for r, seq_len in zip(requests, seq_lens, strict=True):
        num_computed[r] = seq_len
    return dict(zip(requests, next_tokens, strict=True))
