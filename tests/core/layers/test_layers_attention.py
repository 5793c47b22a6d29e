"""The Attention layer: flattened heads in and out, through the context's backend and KV view."""

from __future__ import annotations

import torch

from tenon.layers import Attention
from tenon.plugins.attention.reference import ReferenceAttentionBackend
from tenon.spec.attention import AttentionBackendConfig, AttentionLayer, ForwardContext
from tenon.spec.model import KVCacheSpec
from tenon.testing.paged_runner import PagedKVCache, build_metadata


def test_attention_layer_prefill_matches_causal_sdpa() -> None:
    num_heads, num_kv_heads, head_size, num_tokens, block_size = 4, 2, 8, 7, 4
    layer = AttentionLayer(
        layer_index=1,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        head_size=head_size,
        scale=head_size**-0.5,
    )
    kv = PagedKVCache.allocate(
        KVCacheSpec(num_layers=2, num_kv_heads=num_kv_heads, head_size=head_size, dtype="float32"),
        num_blocks=5,
        block_size=block_size,
        dtype=torch.float32,
        device="cpu",
    )
    metadata, _ = build_metadata([num_tokens], [num_tokens], [[3, 1]], block_size, "cpu")
    backend = ReferenceAttentionBackend(
        AttentionBackendConfig(
            device="cpu",
            dtype="float32",
            block_size=block_size,
            num_layers=2,
            max_num_reqs=1,
            max_num_tokens=num_tokens,
            max_model_len=8,
        )
    )
    context = ForwardContext(
        attention_metadata=metadata, attention_backend=backend, kv_layers=kv.kv_layers
    )
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(num_tokens, num_heads * head_size, generator=generator)
    key = torch.randn(num_tokens, num_kv_heads * head_size, generator=generator)
    value = torch.randn(num_tokens, num_kv_heads * head_size, generator=generator)

    output = Attention(layer)(query, key, value, context)

    expected = (
        torch.nn.functional.scaled_dot_product_attention(
            query.view(num_tokens, num_heads, head_size).transpose(0, 1),
            key.view(num_tokens, num_kv_heads, head_size).transpose(0, 1),
            value.view(num_tokens, num_kv_heads, head_size).transpose(0, 1),
            is_causal=True,
            enable_gqa=True,
        )
        .transpose(0, 1)
        .reshape(num_tokens, num_heads * head_size)
    )
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=1e-5)
    # The K/V went into layer 1's view of the shared allocation, layer 0 untouched.
    assert torch.equal(kv.kv_cache[3, 1, 0].reshape(4, -1), key[:4])
    assert torch.equal(kv.kv_cache[1, 1, 1, :3].reshape(3, -1), value[4:])
    assert not kv.kv_cache[:, 0].any()
