"""GGUF tensor names to HF checkpoint names, and the HF shapes a config implies.

Covers the dense decoder family llama.cpp writes as "llama", "qwen2" and "qwen3" (Llama,
Mistral, SmolLM, Qwen2, Qwen3). GGUF-side names come from the `gguf` package's own table, so a
rename there shows up here as an error rather than as silently skipped tensors.
"""

from __future__ import annotations

from typing import Any

from gguf import MODEL_TENSOR, TENSOR_NAMES

# GGUF tensor -> HF module path ("{bid}" is the layer index in both).
_HF_MODULE_NAMES: dict[MODEL_TENSOR, str] = {
    MODEL_TENSOR.TOKEN_EMBD: "model.embed_tokens",
    MODEL_TENSOR.OUTPUT_NORM: "model.norm",
    MODEL_TENSOR.OUTPUT: "lm_head",
    MODEL_TENSOR.ATTN_NORM: "model.layers.{bid}.input_layernorm",
    MODEL_TENSOR.ATTN_Q: "model.layers.{bid}.self_attn.q_proj",
    MODEL_TENSOR.ATTN_K: "model.layers.{bid}.self_attn.k_proj",
    MODEL_TENSOR.ATTN_V: "model.layers.{bid}.self_attn.v_proj",
    MODEL_TENSOR.ATTN_OUT: "model.layers.{bid}.self_attn.o_proj",
    MODEL_TENSOR.ATTN_Q_NORM: "model.layers.{bid}.self_attn.q_norm",
    MODEL_TENSOR.ATTN_K_NORM: "model.layers.{bid}.self_attn.k_norm",
    MODEL_TENSOR.FFN_NORM: "model.layers.{bid}.post_attention_layernorm",
    MODEL_TENSOR.FFN_GATE: "model.layers.{bid}.mlp.gate_proj",
    MODEL_TENSOR.FFN_UP: "model.layers.{bid}.mlp.up_proj",
    MODEL_TENSOR.FFN_DOWN: "model.layers.{bid}.mlp.down_proj",
}

# llama.cpp's convert_hf_to_gguf permutes Q/K rows only for these architectures (its
# LlamaModel); Qwen models keep HF's layout because llama.cpp runs them with NEOX-style RoPE.
PERMUTED_QK_ARCHITECTURES = frozenset({"llama"})

_PARAMETER_SUFFIXES = (".weight", ".bias")


def gguf_to_hf_names(num_layers: int) -> dict[str, str]:
    """Every GGUF tensor name this loader understands, mapped to its HF name."""
    names: dict[str, str] = {}
    for tensor, hf_template in _HF_MODULE_NAMES.items():
        gguf_template = TENSOR_NAMES[tensor]
        layer_ids = range(num_layers) if "{bid}" in gguf_template else range(1)
        for layer_id in layer_ids:
            gguf_base = gguf_template.format(bid=layer_id)
            hf_base = hf_template.format(bid=layer_id)
            for suffix in _PARAMETER_SUFFIXES:
                names[gguf_base + suffix] = hf_base + suffix
    return names


def is_permuted_qk(gguf_name: str) -> bool:
    """True for the Q/K projection tensors (weights and biases) llama.cpp permutes."""
    return ".attn_q." in gguf_name or ".attn_k." in gguf_name


def head_size(config: Any) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def expected_hf_shape(hf_name: str, config: Any) -> tuple[int, ...]:
    """The HF-layout shape ([out_features, in_features] for a linear weight) of a tensor."""
    hidden_size = config.hidden_size
    q_size = config.num_attention_heads * head_size(config)
    kv_size = config.num_key_value_heads * head_size(config)
    # module name -> (out_features, in_features); in_features None for 1-D tensors (norms)
    module_shapes: dict[str, tuple[int, int | None]] = {
        "embed_tokens": (config.vocab_size, hidden_size),
        "lm_head": (config.vocab_size, hidden_size),
        "norm": (hidden_size, None),
        "input_layernorm": (hidden_size, None),
        "post_attention_layernorm": (hidden_size, None),
        "q_proj": (q_size, hidden_size),
        "k_proj": (kv_size, hidden_size),
        "v_proj": (kv_size, hidden_size),
        "o_proj": (hidden_size, q_size),
        "q_norm": (head_size(config), None),
        "k_norm": (head_size(config), None),
        "gate_proj": (config.intermediate_size, hidden_size),
        "up_proj": (config.intermediate_size, hidden_size),
        "down_proj": (hidden_size, config.intermediate_size),
    }
    module_path, _, kind = hf_name.rpartition(".")
    out_features, in_features = module_shapes[module_path.rsplit(".", 1)[-1]]
    if kind == "weight" and in_features is not None:
        return (out_features, in_features)
    return (out_features,)
