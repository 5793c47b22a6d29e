"""From the user's `--model` to a local source and a load format. Nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

from tenon.default_model import default_model_path
from tenon.spec.loader import ModelSource


def resolve_model_source(model: str | None) -> ModelSource:
    """The default model when None; else a local directory or .gguf file that must exist."""
    if model is None:
        return ModelSource(path=default_model_path())
    path = Path(model).expanduser()
    if not path.exists():
        raise ValueError(
            f"model {model!r} not found: Tenon loads a local model directory (config.json and "
            "safetensors) or a .gguf file, and downloads nothing; give a path, or omit the model "
            "to use the default (SmolLM2-135M-Instruct)"
        )
    return ModelSource(path=path.resolve())


def detect_load_format(source: ModelSource) -> str:
    """The format `--load-format auto` means for this source."""
    path = source.path
    if path.is_file():
        if path.suffix == ".gguf":
            return "gguf"
        raise ValueError(f"{path} is a file but not a .gguf; give a model directory instead")
    if (path / "model.safetensors").exists() or (path / "model.safetensors.index.json").exists():
        return "safetensors"
    if list(path.glob("*.safetensors")):
        return "safetensors"
    if list(path.glob("*.gguf")):
        return "gguf"
    raise ValueError(
        f"{path} has no weights Tenon can read (model.safetensors, a sharded index, or a .gguf); "
        "use --load-format dummy for random weights from config.json"
    )
