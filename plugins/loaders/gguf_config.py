"""A transformers config built from a GGUF file's metadata (no tokenizer conversion needed).

Metadata keys are llama.cpp's (`{arch}.embedding_length`, ...); they map onto the HF config
fields of the matching architecture. Transformers' own GGUF reader does the same but leaves
`architectures` unset and parses the whole token list on the way.
"""

from __future__ import annotations

from typing import Any

from gguf import GGUFReader, Keys

# GGUF `general.architecture` -> (HF model_type, HF architectures entry)
GGUF_ARCHITECTURES: dict[str, tuple[str, str]] = {
    "llama": ("llama", "LlamaForCausalLM"),
    "qwen2": ("qwen2", "Qwen2ForCausalLM"),
    "qwen3": ("qwen3", "Qwen3ForCausalLM"),
}

# llama.cpp key (with "{arch}") -> HF config field
_ARCHITECTURE_KEYS: dict[str, str] = {
    Keys.LLM.CONTEXT_LENGTH: "max_position_embeddings",
    Keys.LLM.EMBEDDING_LENGTH: "hidden_size",
    Keys.LLM.BLOCK_COUNT: "num_hidden_layers",
    Keys.LLM.FEED_FORWARD_LENGTH: "intermediate_size",
    Keys.Attention.HEAD_COUNT: "num_attention_heads",
    Keys.Attention.HEAD_COUNT_KV: "num_key_value_heads",
    Keys.Rope.FREQ_BASE: "rope_theta",
    Keys.Attention.LAYERNORM_RMS_EPS: "rms_norm_eps",
    Keys.LLM.VOCAB_SIZE: "vocab_size",
}

_TOKEN_ID_KEYS: dict[str, str] = {
    Keys.Tokenizer.BOS_ID: "bos_token_id",
    Keys.Tokenizer.EOS_ID: "eos_token_id",
    Keys.Tokenizer.PAD_ID: "pad_token_id",
}


def read_metadata(reader: GGUFReader, key: str) -> Any | None:
    """A metadata value as a Python object (str, int, float, list), or None when absent."""
    field = reader.get_field(key)
    return None if field is None else field.contents()


def gguf_architecture(reader: GGUFReader) -> str:
    architecture = read_metadata(reader, Keys.General.ARCHITECTURE)
    if architecture not in GGUF_ARCHITECTURES:
        supported = ", ".join(sorted(GGUF_ARCHITECTURES))
        raise ValueError(
            f"GGUF architecture {architecture!r} is not supported by the GGUF loader "
            f"(supported: {supported}); use a safetensors checkpoint of this model instead"
        )
    return architecture


def config_kwargs_from_gguf(reader: GGUFReader) -> dict[str, Any]:
    """HF config fields read from the metadata (and from which tensors exist)."""
    architecture = gguf_architecture(reader)
    model_type, hf_architecture = GGUF_ARCHITECTURES[architecture]
    kwargs: dict[str, Any] = {"model_type": model_type, "architectures": [hf_architecture]}
    for key_template, field_name in _ARCHITECTURE_KEYS.items():
        value = read_metadata(reader, key_template.format(arch=architecture))
        if value is not None:
            kwargs[field_name] = value
    for key, field_name in _TOKEN_ID_KEYS.items():
        value = read_metadata(reader, key)
        if value is not None:
            kwargs[field_name] = value

    missing = [
        name
        for name in ("hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads")
        if name not in kwargs
    ]
    if missing:
        raise ValueError(f"GGUF metadata lacks {', '.join(missing)}; the file looks truncated")
    kwargs.setdefault("num_key_value_heads", kwargs["num_attention_heads"])
    if "vocab_size" not in kwargs:
        tokens = read_metadata(reader, Keys.Tokenizer.LIST)
        if tokens is None:
            raise ValueError("GGUF metadata has neither a vocab size nor a token list")
        kwargs["vocab_size"] = len(tokens)

    # head_dim: explicit key length where written (Qwen3), else the RoPE width (full rotary
    # in these families), else hidden_size / num_heads.
    head_dim = read_metadata(reader, Keys.Attention.KEY_LENGTH.format(arch=architecture))
    if head_dim is None:
        head_dim = read_metadata(reader, Keys.Rope.DIMENSION_COUNT.format(arch=architecture))
    if head_dim is not None:
        kwargs["head_dim"] = head_dim

    rope_scaling = read_metadata(reader, Keys.Rope.SCALING_TYPE.format(arch=architecture))
    if rope_scaling not in (None, "none"):
        raise ValueError(
            f"GGUF RoPE scaling {rope_scaling!r} is not supported by the GGUF loader; "
            "use a safetensors checkpoint of this model instead"
        )

    tensor_names = {tensor.name for tensor in reader.tensors}
    kwargs["tie_word_embeddings"] = "output.weight" not in tensor_names
    if model_type == "llama":
        kwargs["attention_bias"] = "blk.0.attn_q.bias" in tensor_names
    return kwargs


def config_from_gguf(reader: GGUFReader) -> Any:
    from transformers import AutoConfig

    kwargs = config_kwargs_from_gguf(reader)
    return AutoConfig.for_model(kwargs.pop("model_type"), **kwargs)
