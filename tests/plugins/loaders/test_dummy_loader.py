from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import LlamaConfig

from tenon.plugins.loaders.dummy_loader import (
    DUMMY_SEED,
    DummyLoader,
    fill_dummy_weights,
    parameter_seed,
)
from tenon.spec.loader import ModelSource
from tests.helpers.tiny_tokenizer import make_tiny_tokenizer


class TinyBlock(nn.Module):
    def __init__(self, reverse_order: bool = False) -> None:
        super().__init__()
        if reverse_order:  # same names, registered in another order
            self.post_attention_layernorm = nn.Parameter(torch.zeros(8))
            self.up_proj = nn.Linear(8, 16, bias=True)
            self.q_proj = nn.Linear(8, 8, bias=False)
        else:
            self.q_proj = nn.Linear(8, 8, bias=False)
            self.up_proj = nn.Linear(8, 16, bias=True)
            self.post_attention_layernorm = nn.Parameter(torch.zeros(8))


class TinyModel(nn.Module):
    def __init__(self, reverse_order: bool = False, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(12, 8)
        self.layers = nn.ModuleList([TinyBlock(reverse_order), TinyBlock(reverse_order)])
        self.norm = nn.Module()
        self.norm.weight = nn.Parameter(torch.zeros(8))
        self.register_buffer("step_count", torch.zeros(3, dtype=torch.int64))
        self.to(dtype)


def test_every_parameter_gets_its_seeded_uniform_values() -> None:
    model = TinyModel()
    DummyLoader(cache_dir=Path("/nonexistent")).load_weights(
        model, ModelSource(path=Path(".")), None
    )
    for name, parameter in model.named_parameters():
        generator = torch.Generator().manual_seed(parameter_seed(name, DUMMY_SEED))
        is_norm = name in ("norm.weight",) or name.endswith("post_attention_layernorm")
        low, high = (0.95, 1.05) if is_norm else (-0.05, 0.05)
        expected = torch.empty(parameter.shape).uniform_(low, high, generator=generator)
        assert torch.equal(parameter.detach(), expected), name
        assert parameter.min() >= low and parameter.max() <= high, name
        assert parameter.std() > 0.01, name  # not constant
    assert torch.equal(model.step_count, torch.zeros(3, dtype=torch.int64))


def test_values_depend_on_names_not_registration_order() -> None:
    first, second = TinyModel(), TinyModel(reverse_order=True)
    fill_dummy_weights(first)
    fill_dummy_weights(second)
    second_parameters = dict(second.named_parameters())
    for name, parameter in first.named_parameters():
        assert torch.equal(parameter, second_parameters[name]), name
    # the two layers share shapes but not values
    assert not torch.equal(first.layers[0].q_proj.weight, first.layers[1].q_proj.weight)


def test_norm_scales_stay_near_one() -> None:
    model = TinyModel(dtype=torch.bfloat16)
    fill_dummy_weights(model)
    for norm in (model.norm.weight, model.layers[0].post_attention_layernorm):
        assert norm.dtype == torch.bfloat16
        assert norm.float().min() >= 0.94 and norm.float().max() <= 1.06
    assert model.layers[0].up_proj.bias.abs().max() <= 0.05


def write_config(directory: Path) -> Path:
    LlamaConfig(
        vocab_size=12,
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        architectures=["LlamaForCausalLM"],
    ).save_pretrained(directory)
    return directory


@pytest.mark.parametrize("as_file", [False, True], ids=["directory", "config_json"])
def test_config_and_tokenizer_from_directory_or_config_file(tmp_path: Path, as_file: bool) -> None:
    directory = write_config(tmp_path / "model")
    path = directory / "config.json" if as_file else directory
    loader = DummyLoader(cache_dir=tmp_path / "cache")
    source = ModelSource(path=path)
    assert not loader.can_load(source)

    config = loader.load_config(source)
    assert config.architectures == ["LlamaForCausalLM"]
    assert (config.hidden_size, config.num_hidden_layers) == (8, 2)
    assert loader.load_tokenizer(source) is None

    make_tiny_tokenizer(directory)
    tokenizer = loader.load_tokenizer(source)
    assert tokenizer.decode(tokenizer("Hello world!").input_ids) == "Hello world!"


def test_missing_config_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="config.json"):
        DummyLoader(cache_dir=tmp_path).load_config(ModelSource(path=tmp_path))
