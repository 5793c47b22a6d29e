"""Model loaders: turn a checkpoint into a config, weights in a built model, and a tokenizer.

Selected by `--load-format` ("auto" asks each loader's `can_load`, in priority order).
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

import attrs

from tenon.spec.model import ModelArchitecture


@attrs.frozen(kw_only=True)
class ModelSource:
    """Where a model lives: a directory, or a single file (a .gguf)."""

    path: Path
    revision: str | None = None


class ModelLoader(abc.ABC):
    """Called by the engine at start-up, in this order: `load_config`, (the model is built),
    `load_weights`, `load_tokenizer`. Long work shows progress; caches go under `cache_dir`."""

    def __init__(self, *, cache_dir: Path) -> None:
        self.cache_dir = cache_dir

    @abc.abstractmethod
    def can_load(self, source: ModelSource) -> bool:
        """Cheap check (file names only) used by `--load-format auto`."""

    @abc.abstractmethod
    def load_config(self, source: ModelSource) -> Any:
        """A `transformers.PretrainedConfig` with `architectures` set."""

    @abc.abstractmethod
    def load_weights(self, model: ModelArchitecture, source: ModelSource, config: Any) -> None:
        """Fill the model's parameters (through `model.load_weights` for real checkpoints).
        Raise ValueError naming the parameters a checkpoint left unset."""

    @abc.abstractmethod
    def load_tokenizer(self, source: ModelSource) -> Any | None:
        """A transformers tokenizer with its chat template, or None when the source has none."""
