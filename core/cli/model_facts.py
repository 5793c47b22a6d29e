"""What `tenon doctor` needs to know about a local model, read from config.json alone.

No weights are read: the architecture, head size, dtype and quantization come from the config,
and the load format from the file names next to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs

DTYPE_ALIASES = {"half": "float16", "float": "float32", "bf16": "bfloat16", "fp16": "float16"}


@attrs.frozen(kw_only=True)
class ModelFacts:
    model_dir: str
    config_path: str
    architecture: str | None  # HF `architectures[0]`
    head_size: int | None
    dtype: str | None  # torch dtype name without "torch."
    quantization: str | None  # the checkpoint's `quantization_config.quant_method`; None: none
    sliding_window: bool
    load_format: str | None  # "safetensors", "gguf", or None when no weights are found


def read_model_facts(path: str | Path) -> ModelFacts:
    """Facts from a model directory or a config.json path; ValueError says what is missing."""
    path = Path(path)
    if not path.exists():
        raise ValueError(
            f"{path} does not exist; `tenon doctor` reads a local model directory or its "
            "config.json (it never downloads)"
        )
    config_path = path / "config.json" if path.is_dir() else path
    if not config_path.is_file():
        raise ValueError(f"{path} has no config.json; pass the model directory or its config.json")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read {config_path} as JSON: {error}") from error
    if not isinstance(config, dict):
        raise ValueError(f"{config_path} must hold a JSON object, got {type(config).__name__}")
    model_dir = config_path.parent
    architectures = config.get("architectures") or []
    quantization_config = _lookup(config, "quantization_config")
    return ModelFacts(
        model_dir=str(model_dir),
        config_path=str(config_path),
        architecture=architectures[0] if architectures else None,
        head_size=_head_size(config),
        dtype=normalize_dtype(_lookup(config, "torch_dtype") or _lookup(config, "dtype")),
        quantization=_quant_method(quantization_config),
        sliding_window=bool(_lookup(config, "sliding_window"))
        and _lookup(config, "use_sliding_window") is not False,
        load_format=detect_load_format(model_dir),
    )


def normalize_dtype(dtype: object) -> str | None:
    """ "torch.bfloat16" / "bf16" / "half" -> the torch dtype name; None for "auto" or absent."""
    if not isinstance(dtype, str) or dtype in ("", "auto"):
        return None
    name = dtype.removeprefix("torch.")
    return DTYPE_ALIASES.get(name, name)


def detect_load_format(model_dir: Path) -> str | None:
    if any(model_dir.glob("*.safetensors")) or any(model_dir.glob("*.safetensors.index.json")):
        return "safetensors"
    if any(model_dir.glob("*.gguf")):
        return "gguf"
    return None


def _lookup(config: dict[str, Any], key: str) -> Any:
    """A key of the config, or of its `text_config` (multimodal checkpoints nest the LM's)."""
    if key in config:
        return config[key]
    text_config = config.get("text_config")
    return text_config.get(key) if isinstance(text_config, dict) else None


def _head_size(config: dict[str, Any]) -> int | None:
    head_dim = _lookup(config, "head_dim")
    if isinstance(head_dim, int):
        return head_dim
    hidden_size = _lookup(config, "hidden_size")
    num_heads = _lookup(config, "num_attention_heads")
    if isinstance(hidden_size, int) and isinstance(num_heads, int) and num_heads > 0:
        return hidden_size // num_heads
    return None


def _quant_method(quantization_config: object) -> str | None:
    if not isinstance(quantization_config, dict):
        return None
    method = quantization_config.get("quant_method")
    return str(method) if method else "unknown"
