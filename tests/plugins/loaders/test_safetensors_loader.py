from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoTokenizer, LlamaConfig

from tenon.plugins.loaders.safetensors_loader import SafetensorsLoader
from tenon.spec.loader import ModelSource
from tests.helpers.tiny_tokenizer import make_tiny_tokenizer
from tests.plugins.loaders.recording_model import RecordingModel

SHAPES: dict[str, tuple[int, ...]] = {
    "model.embed_tokens.weight": (12, 8),
    "model.layers.0.self_attn.q_proj.weight": (8, 8),
    "model.layers.0.self_attn.q_proj.bias": (8,),
    "model.layers.1.self_attn.q_proj.weight": (8, 8),
    "model.norm.weight": (8,),
}
# Stored dtypes differ on purpose: the loader must hand tensors over as stored.
DTYPES = {"model.layers.1.self_attn.q_proj.weight": torch.bfloat16}


def make_tensors() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        name: torch.randn(shape, generator=generator).to(DTYPES.get(name, torch.float32))
        for name, shape in SHAPES.items()
    }


def write_config(directory: Path) -> LlamaConfig:
    config = LlamaConfig(
        vocab_size=12,
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        architectures=["LlamaForCausalLM"],
    )
    config.save_pretrained(directory)
    return config


def write_single(directory: Path, tensors: dict[str, torch.Tensor]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    write_config(directory)
    save_file(tensors, str(directory / "model.safetensors"))
    return directory


def write_sharded(directory: Path, tensors: dict[str, torch.Tensor]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    write_config(directory)
    names = list(tensors)
    shards = {
        "model-00001-of-00002.safetensors": names[:2],
        "model-00002-of-00002.safetensors": names[2:],
    }
    weight_map = {}
    for file_name, shard_names in shards.items():
        save_file({name: tensors[name] for name in shard_names}, str(directory / file_name))
        weight_map.update(dict.fromkeys(shard_names, file_name))
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    return directory


def loader(tmp_path: Path) -> SafetensorsLoader:
    return SafetensorsLoader(cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("writer", [write_single, write_sharded], ids=["single", "sharded"])
def test_every_tensor_arrives_with_its_name_value_and_stored_dtype(tmp_path: Path, writer) -> None:
    tensors = make_tensors()
    directory = writer(tmp_path / "model", tensors)
    model = RecordingModel(SHAPES)
    source = ModelSource(path=directory)
    assert loader(tmp_path).can_load(source)

    loader(tmp_path).load_weights(model, source, config=None)

    assert set(model.received) == set(SHAPES)
    for name, expected in tensors.items():
        assert model.received[name].dtype == expected.dtype, name
        assert torch.equal(model.received[name], expected), name
        assert torch.equal(dict(model.named_parameters())[name], expected.float()), name


def test_missing_shard_file_is_named_before_any_weight_loads(tmp_path: Path) -> None:
    directory = write_sharded(tmp_path / "model", make_tensors())
    (directory / "model-00002-of-00002.safetensors").unlink()
    model = RecordingModel(SHAPES)
    with pytest.raises(ValueError, match="model-00002-of-00002.safetensors"):
        loader(tmp_path).load_weights(model, ModelSource(path=directory), config=None)
    assert model.received == {}


def test_missing_tensor_is_named(tmp_path: Path) -> None:
    tensors = make_tensors()
    del tensors["model.norm.weight"]
    directory = write_single(tmp_path / "model", tensors)
    with pytest.raises(ValueError, match=r"1 parameter\(s\) unset: model\.norm\.weight"):
        loader(tmp_path).load_weights(RecordingModel(SHAPES), ModelSource(path=directory), None)


def test_index_without_weight_map_is_rejected(tmp_path: Path) -> None:
    directory = write_sharded(tmp_path / "model", make_tensors())
    (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}}))
    with pytest.raises(ValueError, match="weight_map"):
        loader(tmp_path).load_weights(RecordingModel(SHAPES), ModelSource(path=directory), None)


def test_can_load_checks_file_names(tmp_path: Path) -> None:
    directory = write_single(tmp_path / "model", make_tensors())
    assert not loader(tmp_path).can_load(ModelSource(path=directory / "model.safetensors"))
    (directory / "config.json").unlink()
    assert not loader(tmp_path).can_load(ModelSource(path=directory))
    empty = tmp_path / "empty"
    empty.mkdir()
    write_config(empty)
    assert not loader(tmp_path).can_load(ModelSource(path=empty))


def test_load_config_reads_local_config_json(tmp_path: Path) -> None:
    directory = write_single(tmp_path / "model", make_tensors())
    config = loader(tmp_path).load_config(ModelSource(path=directory))
    assert config.architectures == ["LlamaForCausalLM"]
    assert (config.hidden_size, config.num_hidden_layers, config.num_key_value_heads) == (8, 2, 1)


def test_config_without_architectures_is_rejected(tmp_path: Path) -> None:
    directory = write_single(tmp_path / "model", make_tensors())
    raw = json.loads((directory / "config.json").read_text())
    del raw["architectures"]
    (directory / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="architectures"):
        loader(tmp_path).load_config(ModelSource(path=directory))


def test_tokenizer_is_none_without_files_and_loaded_with_them(tmp_path: Path) -> None:
    directory = write_single(tmp_path / "model", make_tensors())
    assert loader(tmp_path).load_tokenizer(ModelSource(path=directory)) is None

    make_tiny_tokenizer(directory)
    tokenizer = loader(tmp_path).load_tokenizer(ModelSource(path=directory))
    reference = AutoTokenizer.from_pretrained(str(directory))
    text = "Hello world! Café 日本語 🚀"
    assert tokenizer(text).input_ids == reference(text).input_ids
    assert len(tokenizer(text).input_ids) > 5
    messages = [{"role": "user", "content": "hi"}]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == (
        "<|im_start|>user\nhi<|im_end|>\n"
    )
