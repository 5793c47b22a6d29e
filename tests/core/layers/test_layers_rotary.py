"""RotaryEmbedding against HF's LlamaRotaryEmbedding + apply_rotary_pos_emb."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

from tenon.layers import RotaryEmbedding, rope_parameters_from_config

NUM_HEADS, NUM_KV_HEADS, HEAD_SIZE, MAX_POSITION = 4, 2, 16, 512
LLAMA3 = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    # Small enough that this head size has low, medium and high frequency bands.
    "original_max_position_embeddings": 64,
}


def hf_config(rope_scaling: dict[str, Any] | None, rope_theta: float) -> LlamaConfig:
    return LlamaConfig(
        hidden_size=NUM_HEADS * HEAD_SIZE,
        num_attention_heads=NUM_HEADS,
        num_key_value_heads=NUM_KV_HEADS,
        head_dim=HEAD_SIZE,
        max_position_embeddings=MAX_POSITION,
        rope_theta=rope_theta,
        # transformers writes rope_theta into the dict it is given: pass a copy.
        rope_scaling=None if rope_scaling is None else dict(rope_scaling),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(
    "rope_scaling,rope_theta", [(None, 10000.0), (LLAMA3, 500000.0)], ids=["default", "llama3"]
)
def test_rotary_matches_hf(
    rope_scaling: dict[str, Any] | None, rope_theta: float, dtype: torch.dtype
) -> None:
    config = hf_config(rope_scaling, rope_theta)
    base, scaling = rope_parameters_from_config(config)
    assert base == rope_theta
    ours = RotaryEmbedding(
        HEAD_SIZE, HEAD_SIZE, MAX_POSITION, base, scaling, dtype=dtype, device=torch.device("cpu")
    )
    generator = torch.Generator().manual_seed(2)
    num_tokens = 9
    positions = torch.randint(0, MAX_POSITION, (num_tokens,), generator=generator)
    query = torch.randn(num_tokens, NUM_HEADS * HEAD_SIZE, generator=generator).to(dtype)
    key = torch.randn(num_tokens, NUM_KV_HEADS * HEAD_SIZE, generator=generator).to(dtype)

    out_query, out_key = ours(positions, query, key)

    # HF layout: [batch, heads, tokens, head_size], cos/sin [batch, tokens, head_size].
    cos, sin = LlamaRotaryEmbedding(config)(query, positions[None])
    hf_query, hf_key = apply_rotary_pos_emb(
        query.view(1, num_tokens, NUM_HEADS, HEAD_SIZE).transpose(1, 2),
        key.view(1, num_tokens, NUM_KV_HEADS, HEAD_SIZE).transpose(1, 2),
        cos,
        sin,
    )
    assert torch.equal(out_query, hf_query.transpose(1, 2).reshape(num_tokens, -1))
    assert torch.equal(out_key, hf_key.transpose(1, 2).reshape(num_tokens, -1))


def test_llama3_scaling_changes_low_frequencies_only() -> None:
    cpu = torch.device("cpu")
    plain = RotaryEmbedding(
        HEAD_SIZE, HEAD_SIZE, 128, 10000.0, None, dtype=torch.float32, device=cpu
    )
    scaled = RotaryEmbedding(
        HEAD_SIZE, HEAD_SIZE, 128, 10000.0, LLAMA3, dtype=torch.float32, device=cpu
    )
    # Highest frequency (column 0) untouched, lowest (last of each half) divided by the factor.
    assert torch.equal(plain.cos_cache[:, 0], scaled.cos_cache[:, 0])
    assert not torch.equal(
        plain.cos_cache[:, HEAD_SIZE // 2 - 1], scaled.cos_cache[:, HEAD_SIZE // 2 - 1]
    )


def test_partial_rotary_leaves_the_tail_unchanged() -> None:
    cpu = torch.device("cpu")
    partial = RotaryEmbedding(HEAD_SIZE, 8, 64, 10000.0, None, dtype=torch.float32, device=cpu)
    full8 = RotaryEmbedding(8, 8, 64, 10000.0, None, dtype=torch.float32, device=cpu)
    generator = torch.Generator().manual_seed(3)
    positions = torch.tensor([0, 5, 63])
    query = torch.randn(3, 2 * HEAD_SIZE, generator=generator)
    key = torch.randn(3, HEAD_SIZE, generator=generator)
    out_query, _ = partial(positions, query, key)
    heads = query.view(3, 2, HEAD_SIZE)
    expected_rotated, _ = full8(positions, heads[..., :8].reshape(3, 16), key[:, :8])
    out_heads = out_query.view(3, 2, HEAD_SIZE)
    assert torch.equal(out_heads[..., 8:], heads[..., 8:])
    assert torch.equal(out_heads[..., :8].reshape(3, 16), expected_rotated)


def test_rope_parameters_from_older_configs() -> None:
    legacy_scaling = {key: value for key, value in LLAMA3.items() if key != "rope_type"}
    legacy = SimpleNamespace(rope_theta=1e6, rope_scaling={**legacy_scaling, "type": "llama3"})
    base, scaling = rope_parameters_from_config(legacy)
    assert base == 1e6
    assert scaling is not None and scaling["rope_type"] == "llama3" and scaling["factor"] == 8.0
    assert rope_parameters_from_config(SimpleNamespace(rope_theta=5e5, rope_scaling=None)) == (
        5e5,
        None,
    )
    # transformers 5 accepts the legacy `type` key too and moves it into rope_parameters.
    base, scaling = rope_parameters_from_config(
        hf_config({**legacy_scaling, "type": "llama3"}, 2e5)
    )
    assert base == 2e5 and scaling is not None and scaling["rope_type"] == "llama3"
    assert rope_parameters_from_config(hf_config(None, 10000.0)) == (10000.0, None)


def test_unsupported_rope_type_names_the_supported_ones() -> None:
    with pytest.raises(ValueError, match="default, linear, llama3"):
        RotaryEmbedding(
            HEAD_SIZE,
            HEAD_SIZE,
            64,
            10000.0,
            {"rope_type": "yarn", "factor": 4.0},
            dtype=torch.float32,
            device=torch.device("cpu"),
        )


def test_module_to_casts_the_tables() -> None:
    rotary = RotaryEmbedding(
        HEAD_SIZE, HEAD_SIZE, 32, 10000.0, None, dtype=torch.float32, device=torch.device("cpu")
    )
    expected = rotary.cos_cache.to(torch.float64)
    rotary.to(torch.float64)
    assert rotary.cos_cache.dtype == torch.float64 and torch.equal(rotary.cos_cache, expected)


def test_module_apply_still_reaches_the_rotary_module() -> None:
    """`RotaryEmbedding` keeps torch's `Module.apply(fn)` (it rotates with `rotate`), so
    `model.apply(init_fn)` walks through it like any other module."""
    rotary = RotaryEmbedding(16, 16, 32, 10000.0, None, dtype=torch.float32, device=torch.device("cpu"))
    parent = torch.nn.Sequential(rotary)
    seen: list[torch.nn.Module] = []
    assert parent.apply(seen.append) is parent
    assert seen == [rotary, parent]
