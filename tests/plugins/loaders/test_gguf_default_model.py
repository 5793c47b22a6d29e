"""GGUF loading of the real default model (SmolLM2-135M-Instruct, Q4_1) against transformers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tenon.plugins.loaders.gguf_loader import GGUFLoader
from tenon.spec.loader import ModelSource

pytestmark = pytest.mark.slow


def test_every_tensor_equals_transformers_gguf_loading(
    reference_gguf_model: Any, our_gguf_load: Any
) -> None:
    reference = dict(reference_gguf_model.named_parameters())
    ours = dict(our_gguf_load.model.named_parameters())
    assert set(ours) == set(reference)
    assert "lm_head.weight" not in our_gguf_load.model.received  # tied: the file has no output
    assert len(reference) == 3 + 9 * 30 - 1  # embed, norm, 9 per layer (lm_head tied)
    for name, expected in reference.items():
        assert ours[name].shape == expected.shape, name
        assert torch.equal(ours[name], expected), name
        assert our_gguf_load.model.received[name].dtype == torch.float32, name
    # spot check a value (guards against both sides being zeros)
    assert ours["model.layers.0.self_attn.q_proj.weight"].abs().mean() > 1e-3


def test_config_matches_transformers(reference_gguf_model: Any, our_gguf_load: Any) -> None:
    reference = reference_gguf_model.config
    ours = our_gguf_load.config
    assert ours.architectures == ["LlamaForCausalLM"]
    fields = (
        "model_type",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "vocab_size",
        "max_position_embeddings",
        "rms_norm_eps",
        "tie_word_embeddings",
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
        "attention_bias",
    )
    for field in fields:
        assert getattr(ours, field) == getattr(reference, field), field
    assert ours.rope_parameters == reference.rope_parameters
    assert (ours.hidden_size, ours.num_hidden_layers, ours.vocab_size) == (576, 30, 49152)


def test_directory_source_finds_the_file(default_gguf_path: Path, tmp_path: Path) -> None:
    loader = GGUFLoader(cache_dir=tmp_path)
    assert loader.can_load(ModelSource(path=default_gguf_path))
    assert loader.can_load(ModelSource(path=default_gguf_path.parent))
