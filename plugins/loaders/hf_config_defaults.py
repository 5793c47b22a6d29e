"""What transformers' config classes fill in for the model types `hf_config` reads itself.

Copied from transformers 5 (`LlamaConfig`, `MistralConfig`, `Qwen2Config`, `Qwen3Config` and
their base `PreTrainedConfig`): each class's dataclass field defaults, and the few rules its
`__post_init__` applies. `tests/plugins/loaders/test_hf_config.py` checks every value here
against the installed transformers, so a release that changes one fails a test rather than
silently building a different model.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

# PreTrainedConfig's own dataclass fields (every model type has them).
BASE_FIELDS: Mapping[str, Any] = MappingProxyType(
    {
        "transformers_version": None,
        "architectures": None,
        "output_hidden_states": False,
        "return_dict": True,
        "dtype": None,
        "chunk_size_feed_forward": 0,
        "is_encoder_decoder": False,
        "id2label": None,
        "label2id": None,
        "problem_type": None,
    }
)

# RotaryEmbeddingConfigMixin.default_theta: the base when a config names none.
DEFAULT_ROPE_THETA = 10_000.0

# standardize_rope_params: these rope types get `original_max_position_embeddings`, defaulting
# to `max_position_embeddings`.
ROPE_TYPES_WITH_ORIGINAL_MAX_POSITION = ("llama3", "yarn", "longrope")

# remap_legacy_layer_types: old `layer_types` names and what transformers renames them to.
LEGACY_LAYER_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "mamba": "linear_attention",
        "attention": "full_attention",
        "deepseek_sparse_attention": "indexed_attention",
        "qwen_sparse_attention": "indexed_attention",
    }
)


@attrs.frozen(kw_only=True)
class ModelTypeDefaults:
    """One config class: its field defaults and the rules of its `__post_init__`."""

    fields: Mapping[str, Any]
    # Llama, Mistral: `head_dim: None` becomes hidden_size // num_attention_heads.
    head_dim_from_hidden_size: bool
    # Qwen2, Qwen3: `sliding_window` counts only when `use_sliding_window` is true, and a missing
    # `layer_types` is filled in from `max_window_layers`.
    sliding_window_switch: bool
    # Llama's validate_architecture: hidden_size must be a multiple of num_attention_heads.
    requires_whole_heads: bool


_LLAMA = ModelTypeDefaults(
    fields=MappingProxyType(
        {
            "vocab_size": 32000,
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": None,
            "hidden_act": "silu",
            "max_position_embeddings": 2048,
            "initializer_range": 0.02,
            "rms_norm_eps": 1e-6,
            "use_cache": True,
            "pad_token_id": None,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "pretraining_tp": 1,
            "tie_word_embeddings": False,
            "rope_parameters": None,
            "attention_bias": False,
            "attention_dropout": 0.0,
            "mlp_bias": False,
            "head_dim": None,
        }
    ),
    head_dim_from_hidden_size=True,
    sliding_window_switch=False,
    requires_whole_heads=True,
)

_MISTRAL = ModelTypeDefaults(
    fields=MappingProxyType(
        {
            "vocab_size": 32000,
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "head_dim": None,
            "hidden_act": "silu",
            "max_position_embeddings": 4096 * 32,
            "initializer_range": 0.02,
            "rms_norm_eps": 1e-6,
            "use_cache": True,
            "pad_token_id": None,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "tie_word_embeddings": False,
            "rope_parameters": None,
            "sliding_window": 4096,
            "attention_dropout": 0.0,
        }
    ),
    head_dim_from_hidden_size=True,
    sliding_window_switch=False,
    requires_whole_heads=False,
)

_QWEN2_FIELDS: Mapping[str, Any] = MappingProxyType(
    {
        "vocab_size": 151936,
        "hidden_size": 4096,
        "intermediate_size": 22016,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "hidden_act": "silu",
        "max_position_embeddings": 32768,
        "initializer_range": 0.02,
        "rms_norm_eps": 1e-6,
        "use_cache": True,
        "tie_word_embeddings": False,
        "rope_parameters": None,
        "use_sliding_window": False,
        "sliding_window": 4096,
        "max_window_layers": 28,
        "layer_types": None,
        "attention_dropout": 0.0,
        "pad_token_id": None,
        "bos_token_id": None,
        "eos_token_id": None,
    }
)

_QWEN2 = ModelTypeDefaults(
    fields=_QWEN2_FIELDS,
    head_dim_from_hidden_size=False,  # Qwen2Config has no head_dim at all
    sliding_window_switch=True,
    requires_whole_heads=False,
)

_QWEN3 = ModelTypeDefaults(
    # Qwen3 adds a head_dim that defaults to 128 whatever the hidden size, and attention_bias.
    fields=MappingProxyType({**_QWEN2_FIELDS, "head_dim": 128, "attention_bias": False}),
    head_dim_from_hidden_size=False,
    sliding_window_switch=True,
    requires_whole_heads=False,
)


_BY_MODEL_TYPE: Mapping[str, ModelTypeDefaults] = MappingProxyType(
    {"llama": _LLAMA, "mistral": _MISTRAL, "qwen2": _QWEN2, "qwen3": _QWEN3}
)


def model_type_defaults(model_type: str) -> ModelTypeDefaults | None:
    """The defaults of a model type this module knows; None sends it to transformers."""
    return _BY_MODEL_TYPE.get(model_type)


def known_model_types() -> tuple[str, ...]:
    return tuple(_BY_MODEL_TYPE)
