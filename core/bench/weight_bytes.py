"""How many weight bytes one decode step reads, counted from a model's HF config shapes.

At batch 1 a decode step streams every decoder-layer weight (for a mixture of experts: the
router and the top-k experts only), the final norm and the output head, plus one row of the
input embedding table for the lookup. With tied embeddings the table is the output head, so it
is read whole, and the lookup's row on top (we count traffic, not distinct bytes).
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen(kw_only=True)
class BiasRules:
    """Which linear layers of an architecture carry a bias, and whether it norms q and k."""

    qkv_bias: bool
    output_bias: bool
    mlp_bias: bool
    qk_norm: bool


def _bias_rules(config: Any) -> BiasRules:
    model_type = getattr(config, "model_type", None)
    attention_bias = bool(getattr(config, "attention_bias", False))
    if model_type == "llama":
        return BiasRules(qkv_bias=attention_bias, output_bias=attention_bias,
                         mlp_bias=bool(getattr(config, "mlp_bias", False)), qk_norm=False)
    if model_type == "mistral":
        return BiasRules(qkv_bias=False, output_bias=False, mlp_bias=False, qk_norm=False)
    if model_type == "qwen2":
        # Qwen2 always biases q, k and v; its config has no switch for it.
        return BiasRules(qkv_bias=True, output_bias=False, mlp_bias=False, qk_norm=False)
    if model_type in ("qwen3", "qwen3_moe"):
        return BiasRules(qkv_bias=attention_bias, output_bias=attention_bias, mlp_bias=False, qk_norm=True)
    raise ValueError(
        f"weight bytes are counted for llama, mistral, qwen2, qwen3 and qwen3_moe configs, not "
        f"model_type {model_type!r}; add its layer shapes to tenon.bench.weight_bytes"
    )


@attrs.frozen(kw_only=True)
class WeightCounts:
    """Parameter counts of a decoder-only model, grouped by how a decode step reads them."""

    embedding_params: int  # the input table: vocab x hidden
    layer_params: int  # every decoder layer, every expert
    active_layer_params: int  # what one token reads in the layers (router + top-k experts)
    final_norm_params: int
    output_head_params: int  # 0 when tied: the embedding table is the head
    hidden_size: int
    tied: bool

    @property
    def total_params(self) -> int:
        return self.embedding_params + self.layer_params + self.final_norm_params + self.output_head_params

    @property
    def decode_params_per_step(self) -> int:
        """Parameters one batch-1 decode step reads (one embedding row for the lookup)."""
        head_params = self.embedding_params if self.tied else self.output_head_params
        return self.hidden_size + self.active_layer_params + self.final_norm_params + head_params


def _attention_params(config: Any, rules: BiasRules) -> int:
    hidden_size = int(config.hidden_size)
    num_heads = int(config.num_attention_heads)
    num_kv_heads = int(getattr(config, "num_key_value_heads", None) or num_heads)
    head_dim = int(getattr(config, "head_dim", None) or hidden_size // num_heads)
    q_size, kv_size = num_heads * head_dim, num_kv_heads * head_dim
    params = hidden_size * (q_size + 2 * kv_size) + q_size * hidden_size
    if rules.qkv_bias:
        params += q_size + 2 * kv_size
    if rules.output_bias:
        params += hidden_size
    if rules.qk_norm:
        params += 2 * head_dim
    return params


def _dense_mlp_params(hidden_size: int, intermediate_size: int, bias: bool) -> int:
    # gate and up: hidden -> intermediate; down: intermediate -> hidden
    params = 3 * hidden_size * intermediate_size
    return params + (2 * intermediate_size + hidden_size if bias else 0)


def _is_moe_layer(config: Any, layer_index: int) -> bool:
    num_experts = int(getattr(config, "num_experts", 0) or 0)
    if num_experts == 0:
        return False
    mlp_only_layers = getattr(config, "mlp_only_layers", None) or []
    sparse_step = int(getattr(config, "decoder_sparse_step", 1) or 1)
    return layer_index not in mlp_only_layers and (layer_index + 1) % sparse_step == 0


def weight_counts(config: Any) -> WeightCounts:
    """Count parameters from `config`'s shapes (an HF `PretrainedConfig`, or anything with its
    attributes); raises ValueError for an architecture whose layers are not described here."""
    rules = _bias_rules(config)
    hidden_size = int(config.hidden_size)
    vocab_size = int(config.vocab_size)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    attention = _attention_params(config, rules)
    norms = 2 * hidden_size  # input and post-attention RMS norms
    layer_params = active_layer_params = 0
    for layer_index in range(int(config.num_hidden_layers)):
        if _is_moe_layer(config, layer_index):
            num_experts = int(config.num_experts)
            expert = _dense_mlp_params(hidden_size, int(config.moe_intermediate_size), bias=False)
            router = num_experts * hidden_size
            layer_params += attention + norms + router + num_experts * expert
            active_layer_params += attention + norms + router + int(config.num_experts_per_tok) * expert
        else:
            dense = attention + norms + _dense_mlp_params(hidden_size, int(config.intermediate_size), rules.mlp_bias)
            layer_params += dense
            active_layer_params += dense
    return WeightCounts(
        embedding_params=vocab_size * hidden_size,
        layer_params=layer_params,
        active_layer_params=active_layer_params,
        final_norm_params=hidden_size,
        output_head_params=0 if tied else vocab_size * hidden_size,
        hidden_size=hidden_size,
        tied=tied,
    )


def decode_bytes_per_step(config: Any, dtype_bytes: int) -> int:
    """Weight bytes a batch-1 decode step must read (llama-3.1-8b in bf16: 15.01 GB)."""
    return weight_counts(config).decode_params_per_step * dtype_bytes
