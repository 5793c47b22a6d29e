from __future__ import annotations

import gguf
import pytest
import torch
from transformers import LlamaConfig, Qwen3Config

from tenon.plugins.loaders.gguf_names import expected_hf_shape, gguf_to_hf_names
from tenon.plugins.loaders.gguf_tensors import unpermute_qk_rows


def llama_cpp_permute(rows: torch.Tensor, num_heads: int) -> torch.Tensor:
    """convert_hf_to_gguf's LlamaModel.permute, as written there."""
    return (
        rows.reshape(num_heads, 2, rows.shape[0] // num_heads // 2, *rows.shape[1:])
        .swapaxes(1, 2)
        .reshape(rows.shape)
    )


def test_names_agree_with_the_gguf_package_table_for_qwen3() -> None:
    # gguf's table maps HF module names to GGUF names; ours must be its inverse.
    num_layers = 3
    gguf_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN3, num_layers)
    names = gguf_to_hf_names(num_layers)
    assert len(names) == 2 * (3 + 11 * num_layers)
    for gguf_name, hf_name in names.items():
        hf_base, suffix = hf_name.rsplit(".", 1)
        assert gguf_map.get_name(hf_base) + "." + suffix == gguf_name, hf_name


@pytest.mark.parametrize("architecture", [gguf.MODEL_ARCH.LLAMA, gguf.MODEL_ARCH.QWEN2])
def test_names_agree_with_the_gguf_package_where_the_architecture_has_them(architecture) -> None:
    gguf_map = gguf.get_tensor_name_map(architecture, 2)
    known = 0
    for gguf_name, hf_name in gguf_to_hf_names(2).items():
        gguf_base = gguf_map.get_name(hf_name.rsplit(".", 1)[0])
        if gguf_base is not None:
            assert gguf_name.startswith(gguf_base + "."), hf_name
            known += 1
    assert known == 2 * (3 + 9 * 2)  # all but the Q/K norms


def test_spot_names() -> None:
    names = gguf_to_hf_names(2)
    assert names["token_embd.weight"] == "model.embed_tokens.weight"
    assert names["output.weight"] == "lm_head.weight"
    assert names["output_norm.weight"] == "model.norm.weight"
    assert names["blk.1.attn_output.weight"] == "model.layers.1.self_attn.o_proj.weight"
    assert names["blk.0.attn_k.bias"] == "model.layers.0.self_attn.k_proj.bias"
    assert names["blk.1.ffn_norm.weight"] == "model.layers.1.post_attention_layernorm.weight"
    assert names["blk.0.attn_norm.weight"] == "model.layers.0.input_layernorm.weight"
    assert "blk.2.attn_q.weight" not in names


@pytest.mark.parametrize("num_heads", [1, 3, 4])
@pytest.mark.parametrize("trailing", [(), (5,)], ids=["bias", "weight"])
def test_unpermute_inverts_llama_cpp_permute(num_heads: int, trailing: tuple[int, ...]) -> None:
    generator = torch.Generator().manual_seed(num_heads)
    original = torch.randn(num_heads * 6, *trailing, generator=generator)
    permuted = llama_cpp_permute(original, num_heads)
    assert not torch.equal(permuted, original)
    assert torch.equal(unpermute_qk_rows(permuted, num_heads), original)


def test_unpermute_rejects_rows_that_do_not_split_into_heads() -> None:
    with pytest.raises(ValueError, match="head counts"):
        unpermute_qk_rows(torch.zeros(10, 4), num_heads=3)


def test_expected_shapes_follow_the_config() -> None:
    config = LlamaConfig(
        vocab_size=50,
        hidden_size=24,
        intermediate_size=40,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
    )
    assert expected_hf_shape("model.embed_tokens.weight", config) == (50, 24)
    assert expected_hf_shape("lm_head.weight", config) == (50, 24)
    assert expected_hf_shape("model.layers.0.self_attn.q_proj.weight", config) == (32, 24)
    assert expected_hf_shape("model.layers.0.self_attn.q_proj.bias", config) == (32,)
    assert expected_hf_shape("model.layers.0.self_attn.k_proj.weight", config) == (16, 24)
    assert expected_hf_shape("model.layers.0.self_attn.o_proj.weight", config) == (24, 32)
    assert expected_hf_shape("model.layers.0.mlp.down_proj.weight", config) == (24, 40)
    assert expected_hf_shape("model.layers.0.mlp.up_proj.weight", config) == (40, 24)
    assert expected_hf_shape("model.layers.0.input_layernorm.weight", config) == (24,)
    qwen3 = Qwen3Config(hidden_size=24, num_attention_heads=4, head_dim=16)
    assert expected_hf_shape("model.layers.0.self_attn.k_norm.weight", qwen3) == (16,)
