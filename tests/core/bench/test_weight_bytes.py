"""Decode bytes per step, counted from config shapes, against HF's own modules (built on meta)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import transformers

from tenon.bench.weight_bytes import decode_bytes_per_step, weight_counts

CONFIGS_DIR = Path(__file__).resolve().parents[3] / "benchmarks" / "configs"
TINY = {"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 3, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 100}


def hf_meta_model(config: Any) -> Any:
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(config)


def hf_param_count(model: Any) -> int:
    # named_parameters() lists a tied table once, as the model holds it once.
    return sum(parameter.numel() for parameter in model.parameters())


def test_llama_3_1_8b_streams_15_01_gb_per_step_in_bf16() -> None:
    config = transformers.AutoConfig.from_pretrained(CONFIGS_DIR / "llama-3.1-8b")
    counts = weight_counts(config)
    assert counts.total_params == hf_param_count(hf_meta_model(config)) == 8_030_261_248
    # Everything but the 128256 x 4096 input table, plus one of its rows.
    assert decode_bytes_per_step(config, 2) == (8_030_261_248 - 128_256 * 4096 + 4096) * 2 == 15_009_857_536
    assert decode_bytes_per_step(config, 2) == pytest.approx(15.01e9, rel=0.005)
    assert counts.total_params * 2 == pytest.approx(16.06e9, rel=0.001)


def test_qwen3_8b_matches_hf() -> None:
    config = transformers.AutoConfig.from_pretrained(CONFIGS_DIR / "qwen3-8b")
    assert weight_counts(config).total_params == hf_param_count(hf_meta_model(config)) == 8_190_735_360
    assert decode_bytes_per_step(config, 2) == (8_190_735_360 - 151_936 * 4096 + 4096) * 2


@pytest.mark.parametrize("config", [
    transformers.LlamaConfig(**TINY, attention_bias=True, mlp_bias=True, tie_word_embeddings=False),
    transformers.LlamaConfig(**TINY, head_dim=24, tie_word_embeddings=True),
    transformers.MistralConfig(**TINY, tie_word_embeddings=False),
    transformers.Qwen2Config(**TINY, tie_word_embeddings=True),
    transformers.Qwen3Config(**TINY, head_dim=16, attention_bias=True, tie_word_embeddings=False),
], ids=["llama-biases", "llama-head-dim-tied", "mistral", "qwen2-tied", "qwen3-biases"])
def test_dense_counts_match_hf(config: Any) -> None:
    model = hf_meta_model(config)
    counts = weight_counts(config)
    total = hf_param_count(model)
    assert counts.total_params == total
    assert counts.active_layer_params == counts.layer_params
    hidden = config.hidden_size
    table = config.vocab_size * hidden
    if config.tie_word_embeddings:
        # The table is read whole as the head, and one row of it for the lookup.
        assert counts.decode_params_per_step == total + hidden
    else:
        assert counts.decode_params_per_step == total - table + hidden
    assert decode_bytes_per_step(config, 4) == 4 * counts.decode_params_per_step


def test_moe_reads_the_router_and_top_k_experts() -> None:
    config = transformers.Qwen3MoeConfig(
        **TINY, moe_intermediate_size=32, head_dim=16, num_experts=6, num_experts_per_tok=2,
        decoder_sparse_step=2, mlp_only_layers=[2], attention_bias=False, tie_word_embeddings=False)
    model = hf_meta_model(config)
    counts = weight_counts(config)
    assert counts.total_params == hf_param_count(model)
    # Layer 1 is the only MoE layer (sparse step 2, layer 2 forced dense): 4 of its 6 experts idle.
    expert_params = sum(p.numel() for name, p in model.named_parameters() if ".experts." in name)
    assert expert_params == 6 * 3 * 64 * 32
    assert counts.layer_params - counts.active_layer_params == expert_params * 4 // 6
    assert counts.decode_params_per_step == counts.total_params - expert_params * 4 // 6 - 100 * 64 + 64


def test_unknown_architecture_says_where_to_add_it() -> None:
    config = transformers.GPT2Config()
    with pytest.raises(ValueError, match="model_type 'gpt2'.*tenon.bench.weight_bytes"):
        weight_counts(config)
