"""Our Llama-family models against HF transformers on tiny random checkpoints.

Each case (see conftest.CASES) runs 8 prompts of different lengths batched together through the
paged runner with the reference attention backend; HF runs each prompt alone.
"""

from __future__ import annotations

from typing import Any

import torch

from tenon.plugins.attention.reference import ReferenceAttentionBackend
from tenon.spec.attention import AttentionBackendConfig, ForwardContext
from tenon.testing.paged_runner import PagedKVCache, build_metadata, greedy_generate

MAX_NEW_TOKENS = 32


def _assert_varied(tokens: list[list[int]]) -> None:
    # Guards the test itself: a degenerate model that repeats one token would match trivially.
    assert all(len(row) == MAX_NEW_TOKENS for row in tokens)
    assert len({token for row in tokens for token in row}) > 20


def test_greedy_tokens_match_hf(reference: Any, ours: Any) -> None:
    _assert_varied(reference.greedy_tokens)
    assert greedy_generate(ours, reference.prompts, MAX_NEW_TOKENS) == reference.greedy_tokens


def test_chunked_prefill_gives_same_tokens(reference: Any, ours: Any) -> None:
    tokens = greedy_generate(ours, reference.prompts, MAX_NEW_TOKENS, prefill_chunk=3)
    assert tokens == reference.greedy_tokens


def test_prefill_logits_match_hf(reference: Any, ours: Any) -> None:
    prompts = reference.prompts
    block_size = 4
    kv_spec = ours.kv_cache_spec()
    blocks_per_prompt = [-(-len(prompt) // block_size) for prompt in prompts]
    kv = PagedKVCache.allocate(
        kv_spec, 1 + sum(blocks_per_prompt), block_size, torch.float32, "cpu"
    )
    # Blocks handed out back to front, so no prompt's blocks are in ascending order.
    free_block_ids = list(range(sum(blocks_per_prompt), 0, -1))
    block_tables = []
    for count in blocks_per_prompt:
        block_tables.append(free_block_ids[:count])
        free_block_ids = free_block_ids[count:]
    lens = [len(prompt) for prompt in prompts]
    metadata, _ = build_metadata(lens, lens, block_tables, block_size, "cpu")
    backend = ReferenceAttentionBackend(
        AttentionBackendConfig(
            device="cpu",
            dtype="float32",
            block_size=block_size,
            num_layers=kv_spec.num_layers,
            max_num_reqs=len(prompts),
            max_num_tokens=sum(lens),
            max_model_len=max(lens),
        )
    )
    context = ForwardContext(
        attention_metadata=metadata, attention_backend=backend, kv_layers=kv.kv_layers
    )
    input_ids = torch.tensor([token for prompt in prompts for token in prompt])
    positions = torch.cat([torch.arange(length) for length in lens])
    with torch.inference_mode():
        hidden = ours(input_ids, positions, context)  # [num_tokens, hidden_size]
        logits = ours.compute_logits(hidden)  # float32 [num_tokens, vocab_size]
    assert logits.dtype == torch.float32
    for index, rows in enumerate(logits.split(lens)):
        torch.testing.assert_close(rows, reference.prefill_logits[index], atol=1e-4, rtol=0)


def test_load_weights_fills_every_parameter(reference: Any, build: Any) -> None:
    model = reference.case.ours.from_config(reference.hf_config, build)
    loaded = model.load_weights(reference.hf_model.state_dict().items())
    assert loaded == set(dict(model.named_parameters()))


def test_kv_cache_spec_and_attention_layers(reference: Any, ours: Any) -> None:
    config = reference.hf_config
    head_size = (
        getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    )
    spec = ours.kv_cache_spec()
    assert (spec.num_layers, spec.num_kv_heads, spec.head_size, spec.dtype) == (
        2,
        config.num_key_value_heads,
        head_size,
        "float32",
    )
    our_windows = tuple(layer.self_attn.attn.layer.sliding_window for layer in ours.model.layers)
    assert our_windows == reference.case.sliding_windows
