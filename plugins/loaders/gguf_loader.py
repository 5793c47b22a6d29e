"""Loads a llama.cpp GGUF file: config from its metadata, float32 weights, cached tokenizer.

The source is the .gguf file itself or a directory holding exactly one. Quantized tensors are
dequantised to float32 on the CPU; the model's weight loaders cast them to its dtype.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenon.plugins.loaders.weight_check import raise_if_unfilled
from tenon.spec.loader import ModelLoader, ModelSource
from tenon.spec.model import ModelArchitecture

if TYPE_CHECKING:
    from gguf import GGUFReader

GGUF_SUFFIX = ".gguf"


def gguf_files_in(directory: Path) -> list[Path]:
    return sorted(path for path in directory.iterdir() if path.suffix == GGUF_SUFFIX)


def resolve_gguf_file(path: Path) -> Path:
    """The .gguf file a source names (the path itself, or the only one in a directory)."""
    if path.is_file() and path.suffix == GGUF_SUFFIX:
        return path
    if path.is_dir():
        candidates = gguf_files_in(path)
        if len(candidates) == 1:
            return candidates[0]
        if candidates:
            names = ", ".join(candidate.name for candidate in candidates)
            raise ValueError(f"{path} holds several GGUF files ({names}); pass the file to load")
    raise ValueError(f"{path} is neither a .gguf file nor a directory with exactly one")


class GGUFLoader(ModelLoader):
    def __init__(self, *, cache_dir: Path) -> None:
        super().__init__(cache_dir=cache_dir)
        # Parsing the metadata takes seconds (it holds the whole vocabulary), and the engine
        # asks for the config and then the weights of the same file: keep the last reader.
        self._reader_path: Path | None = None
        self._reader: GGUFReader | None = None

    def reader(self, gguf_path: Path) -> GGUFReader:
        from gguf import GGUFReader

        if self._reader is None or self._reader_path != gguf_path:
            self._reader = GGUFReader(gguf_path)
            self._reader_path = gguf_path
        return self._reader

    def can_load(self, source: ModelSource) -> bool:
        path = source.path
        if path.is_dir():
            return len(gguf_files_in(path)) == 1
        return path.is_file() and path.suffix == GGUF_SUFFIX

    def load_config(self, source: ModelSource) -> Any:
        from tenon.plugins.loaders.gguf_config import config_from_gguf

        return config_from_gguf(self.reader(resolve_gguf_file(source.path)))

    def load_weights(self, model: ModelArchitecture, source: ModelSource, config: Any) -> None:
        from tenon.plugins.loaders.gguf_config import gguf_architecture
        from tenon.plugins.loaders.gguf_tensors import iter_gguf_tensors

        gguf_path = resolve_gguf_file(source.path)
        reader = self.reader(gguf_path)
        tensors = iter_gguf_tensors(reader, config, gguf_architecture(reader))
        filled_names = model.load_weights(tensors)
        raise_if_unfilled(model, filled_names, str(gguf_path))

    def load_tokenizer(self, source: ModelSource) -> Any | None:
        from tenon.plugins.loaders.gguf_tokenizer import load_gguf_tokenizer

        gguf_path = resolve_gguf_file(source.path)
        # The tokenizer is the last thing loaded: drop the reader (and its file mapping).
        self._reader = None
        self._reader_path = None
        return load_gguf_tokenizer(gguf_path, self.cache_dir)
