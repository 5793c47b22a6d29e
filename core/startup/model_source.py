"""From the user's `--model` to a local source and a load format. Nothing is downloaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from tenon import envs
from tenon.default_model import default_model_path
from tenon.plugin_host import Decision, PluginHost
from tenon.spec import ModelLoaderSpec, PluginKind, Requirements
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


def select_loader(host: PluginHost, source: ModelSource, load_format: str) -> tuple[Any, str, Decision]:
    """The loader class for `source`, the format it serves, and the resolver's decision.

    `--load-format auto` asks each registered loader, highest priority first, whether it can
    read the source (`ModelLoader.can_load`, a check of file names); a loader plugin for a new
    format is therefore picked up without touching the core.
    """
    kind = PluginKind.MODEL_LOADER
    if load_format != "auto":
        loader_class, decision = host.select(kind, Requirements(load_format=load_format))
        return loader_class, load_format, decision
    candidates = sorted(host.specs(kind), key=lambda entry: (-entry.spec.priority, entry.spec.name))
    asked = []
    for entry in candidates:
        loader_class, decision = host.select(kind, Requirements(), requested=entry.spec.name)
        asked.append(entry.spec.name)
        if loader_class(cache_dir=envs.cache_dir()).can_load(source):
            spec = cast(ModelLoaderSpec, entry.spec)
            return loader_class, spec.capabilities.formats[0], decision
    raise ValueError(
        f"no model loader can read {source.path} (asked: {', '.join(asked)}); Tenon reads a "
        "model directory with safetensors, a .gguf file, or formats that loader plugins add; use "
        "--load-format dummy for random weights from config.json"
    )
