"""Loads an HF checkpoint directory: config.json plus one safetensors file or a sharded index.

model_dir/
  config.json
  model.safetensors                      (single file), or
  model.safetensors.index.json           {"weight_map": {tensor name: shard file name}}
  model-00001-of-00002.safetensors ...   (the shards the index names)
  tokenizer.json / tokenizer_config.json (optional)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from tenon.plugins.loaders.directory_tokenizer import load_directory_tokenizer
from tenon.plugins.loaders.hf_config import read_hf_config
from tenon.plugins.loaders.weight_check import raise_if_unfilled
from tenon.spec.loader import ModelLoader, ModelSource
from tenon.spec.model import ModelArchitecture

if TYPE_CHECKING:
    import torch

CONFIG_FILE_NAME = "config.json"
SINGLE_FILE_NAME = "model.safetensors"
INDEX_FILE_NAME = "model.safetensors.index.json"


def load_hf_config(config_path: Path) -> Any:
    """The config of a local config.json (or its directory), with architectures: an `HFConfig`
    for the built-in model types (no transformers import), else a transformers config."""
    file_path = config_path if config_path.is_file() else config_path / CONFIG_FILE_NAME
    if not file_path.is_file():
        raise ValueError(
            f"no {CONFIG_FILE_NAME} in {config_path}; pass a model directory that has one"
        )
    config = read_hf_config(file_path)
    if not getattr(config, "architectures", None):
        raise ValueError(
            f"{file_path} has no 'architectures' list; add the model class "
            'name, for example "architectures": ["LlamaForCausalLM"]'
        )
    return config


def shard_paths(directory: Path) -> list[Path]:
    """The safetensors files of a checkpoint directory, in load order (checked to exist)."""
    index_path = directory / INDEX_FILE_NAME
    if index_path.is_file():
        try:
            weight_map = json.loads(index_path.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(
                f"{index_path} is not a safetensors index (needs a 'weight_map' object): {error}"
            ) from error
        file_names = sorted(set(weight_map.values()))
        missing_files = [name for name in file_names if not (directory / name).is_file()]
        if missing_files:
            raise ValueError(
                f"{index_path} names shard file(s) missing from {directory}: "
                f"{', '.join(missing_files)}; download the complete checkpoint"
            )
        return [directory / name for name in file_names]
    single_path = directory / SINGLE_FILE_NAME
    if single_path.is_file():
        return [single_path]
    raise ValueError(f"{directory} has neither {SINGLE_FILE_NAME} nor {INDEX_FILE_NAME}")


def iter_safetensors(paths: list[Path]) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) pairs as stored (dtype untouched), one shard open at a time."""
    from safetensors import safe_open

    for path in tqdm(
        paths, desc="loading safetensors shards", unit="shard", disable=len(paths) < 2
    ):
        with safe_open(str(path), framework="pt", device="cpu") as shard:
            for name in shard.keys():
                yield name, shard.get_tensor(name)


class SafetensorsLoader(ModelLoader):
    def can_load(self, source: ModelSource) -> bool:
        directory = source.path
        return (
            directory.is_dir()
            and (directory / CONFIG_FILE_NAME).is_file()
            and (
                (directory / SINGLE_FILE_NAME).is_file() or (directory / INDEX_FILE_NAME).is_file()
            )
        )

    def load_config(self, source: ModelSource) -> Any:
        return load_hf_config(source.path)

    def load_weights(self, model: ModelArchitecture, source: ModelSource, config: Any) -> None:
        paths = shard_paths(source.path)
        filled_names = model.load_weights(iter_safetensors(paths))
        raise_if_unfilled(model, filled_names, str(source.path))

    def load_tokenizer(self, source: ModelSource) -> Any | None:
        return load_directory_tokenizer(source.path)
