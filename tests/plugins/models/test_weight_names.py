"""HF checkpoint names -> our parameters: fused shards, skipped names, and unknown names."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import transformers

from tenon.plugins.models.causal_lm import fused_target
from tenon.plugins.models.llama import LlamaForCausalLM
from tenon.plugins.models.qwen2 import Qwen2ForCausalLM
from tenon.plugins.models.qwen3 import Qwen3ForCausalLM


def _llama_config(**overrides: Any) -> Any:
    return transformers.LlamaConfig(
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=50,
        **overrides,
    )


@pytest.mark.parametrize(
    ("checkpoint_name", "expected"),
    [
        ("model.layers.3.self_attn.q_proj.weight", ("model.layers.3.self_attn.qkv_proj.weight", 0)),
        ("model.layers.3.self_attn.k_proj.weight", ("model.layers.3.self_attn.qkv_proj.weight", 1)),
        ("model.layers.3.self_attn.v_proj.bias", ("model.layers.3.self_attn.qkv_proj.bias", 2)),
        ("model.layers.0.mlp.gate_proj.weight", ("model.layers.0.mlp.gate_up_proj.weight", 0)),
        ("model.layers.0.mlp.up_proj.bias", ("model.layers.0.mlp.gate_up_proj.bias", 1)),
        ("model.layers.0.mlp.down_proj.weight", ("model.layers.0.mlp.down_proj.weight", None)),
        (
            "model.layers.0.self_attn.o_proj.weight",
            ("model.layers.0.self_attn.o_proj.weight", None),
        ),
        (
            "model.layers.0.self_attn.q_norm.weight",
            ("model.layers.0.self_attn.q_norm.weight", None),
        ),
        ("model.embed_tokens.weight", ("model.embed_tokens.weight", None)),
    ],
)
def test_fused_target(checkpoint_name: str, expected: tuple[str, int | None]) -> None:
    assert fused_target(checkpoint_name) == expected


def test_shards_land_in_their_rows(build: Any) -> None:
    model = LlamaForCausalLM.from_config(_llama_config(attention_bias=True), build)
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(64, 64, generator=generator)  # [num_heads * head_size, hidden_size]
    k = torch.randn(32, 64, generator=generator)  # [num_kv_heads * head_size, hidden_size]
    v = torch.randn(32, 64, generator=generator)
    v_bias = torch.randn(32, generator=generator)
    up = torch.randn(96, 64, generator=generator)  # [intermediate_size, hidden_size]
    prefix = "model.layers.0"
    loaded = model.load_weights(
        [
            (f"{prefix}.self_attn.v_proj.weight", v),
            (f"{prefix}.self_attn.q_proj.weight", q),
            (f"{prefix}.self_attn.k_proj.weight", k),
            (f"{prefix}.self_attn.v_proj.bias", v_bias),
            (f"{prefix}.mlp.up_proj.weight", up),
        ]
    )
    assert loaded == {
        f"{prefix}.self_attn.qkv_proj.weight",
        f"{prefix}.self_attn.qkv_proj.bias",
        f"{prefix}.mlp.gate_up_proj.weight",
    }
    attention = model.model.layers[0].self_attn
    assert torch.equal(attention.qkv_proj.weight, torch.cat([q, k, v]))
    assert torch.equal(attention.qkv_proj.bias[96:], v_bias)
    assert torch.equal(model.model.layers[0].mlp.gate_up_proj.weight[96:], up)


def test_unknown_weight_name_raises_naming_it(build: Any) -> None:
    model = LlamaForCausalLM.from_config(_llama_config(), build)
    with pytest.raises(ValueError, match=r"model\.layers\.0\.self_attn\.q_norm\.weight"):
        # A Qwen3 weight fed to Llama, which has no q/k norm.
        model.load_weights([("model.layers.0.self_attn.q_norm.weight", torch.ones(16))])
    with pytest.raises(ValueError, match="vision_tower"):
        model.load_weights([("vision_tower.patch_embed.weight", torch.ones(4))])


def test_rotary_inv_freq_is_skipped(build: Any) -> None:
    model = LlamaForCausalLM.from_config(_llama_config(), build)
    assert (
        model.load_weights([("model.layers.0.self_attn.rotary_emb.inv_freq", torch.ones(8))])
        == set()
    )


def test_lm_head_ignored_when_tied_and_loaded_when_untied(build: Any) -> None:
    embedding = torch.randn(50, 64, generator=torch.Generator().manual_seed(0))
    head = torch.randn(50, 64, generator=torch.Generator().manual_seed(1))

    tied = Qwen2ForCausalLM.from_config(
        transformers.Qwen2Config(
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=50,
            tie_word_embeddings=True,
        ),
        build,
    )
    loaded = tied.load_weights([("model.embed_tokens.weight", embedding), ("lm_head.weight", head)])
    assert loaded == {"model.embed_tokens.weight"}
    assert torch.equal(tied.lm_head.weight, embedding)

    untied = LlamaForCausalLM.from_config(_llama_config(tie_word_embeddings=False), build)
    loaded = untied.load_weights(
        [("model.embed_tokens.weight", embedding), ("lm_head.weight", head)]
    )
    assert loaded == {"model.embed_tokens.weight", "lm_head.weight"}
    assert torch.equal(untied.lm_head.weight, head)
    assert torch.equal(untied.model.embed_tokens.weight, embedding)


def test_bias_switches_per_architecture(build: Any) -> None:
    def biases(model: Any) -> tuple[bool, bool]:
        attention = model.model.layers[0].self_attn
        return attention.qkv_proj.bias is not None, attention.o_proj.bias is not None

    small = {
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "vocab_size": 50,
    }
    assert biases(LlamaForCausalLM.from_config(_llama_config(), build)) == (False, False)
    assert biases(LlamaForCausalLM.from_config(_llama_config(attention_bias=True), build)) == (
        True,
        True,
    )
    # Qwen2 always has q/k/v biases and never an o_proj bias; its config has no switch.
    assert biases(Qwen2ForCausalLM.from_config(transformers.Qwen2Config(**small), build)) == (
        True,
        False,
    )
    qwen3 = transformers.Qwen3Config(**small, head_dim=16, attention_bias=True)
    assert biases(Qwen3ForCausalLM.from_config(qwen3, build)) == (True, True)
