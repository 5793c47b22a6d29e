"""`read_hf_config` against transformers' `AutoConfig` on the same config.json files.

Each case is a tiny config of a built-in architecture, written by transformers'
`save_pretrained` (which leaves out values equal to the class defaults, so our defaults are
exercised) or by hand the way released checkpoints spell it (legacy `rope_theta`,
`rope_scaling`, `torch_dtype`). Both configs must agree on every attribute a model plugin, the
engine builder or the benchmarks read, and build models with identical logits.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers

from tenon.plugin_host.targets import import_target
from tenon.plugins.loaders.dummy_loader import fill_dummy_weights
from tenon.plugins.loaders.hf_config import HFConfig, read_hf_config, to_transformers_config
from tenon.plugins.loaders.hf_config_defaults import (
    BASE_FIELDS,
    DEFAULT_ROPE_THETA,
    model_type_defaults,
)
from tenon.plugins.models.registration import tenon_models
from tenon.plugins.quantization.none import NoQuantScheme
from tenon.spec.model import ModelBuildContext
from tenon.testing.hf_reference import random_prompts
from tenon.testing.paged_runner import prefill_logits

CONFIG_CLASSES = {
    "llama": transformers.LlamaConfig,
    "mistral": transformers.MistralConfig,
    "qwen2": transformers.Qwen2Config,
    "qwen3": transformers.Qwen3Config,
}
ARCHITECTURES = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
}
TINY = {
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "vocab_size": 160,
    "max_position_embeddings": 64,
}
# Read by plugins/models (DecoderShape, rotary, causal_lm), the engine builder and tenon.bench.
READ_ATTRIBUTES = (
    "architectures", "model_type", "hidden_act", "hidden_size", "intermediate_size",
    "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size",
    "rms_norm_eps", "attention_bias", "mlp_bias", "sliding_window", "layer_types",
    "max_position_embeddings", "rope_parameters", "rope_scaling", "rope_theta", "default_theta",
    "tie_word_embeddings", "dtype", "torch_dtype", "quantization_config", "eos_token_id",
    "bos_token_id", "num_experts", "mlp_only_layers", "decoder_sparse_step",
    "moe_intermediate_size", "num_experts_per_tok", "use_sliding_window", "max_window_layers",
)
MISSING = object()

# (model_type, constructor keywords), each saved with save_pretrained.
SAVED_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "llama-defaults": ("llama", {}),
    "llama-gqa-llama3-rope-bf16": ("llama", {
        "num_key_value_heads": 2, "dtype": "bfloat16", "attention_bias": True,
        "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                            "low_freq_factor": 1.0, "high_freq_factor": 4.0},
    }),
    "llama-tied-mlp-bias-head-dim-32": ("llama", {
        "num_key_value_heads": 1, "tie_word_embeddings": True, "mlp_bias": True, "head_dim": 32,
        "rope_parameters": {"rope_type": "linear", "factor": 2.0},
    }),
    "mistral-window-8": ("mistral", {"num_key_value_heads": 2, "sliding_window": 8}),
    "mistral-no-window-heads-kv-default": ("mistral", {
        "num_attention_heads": 8, "sliding_window": None}),
    "qwen2-defaults": ("qwen2", {"num_key_value_heads": 2}),
    "qwen2-sliding-from-layer-1": ("qwen2", {
        "num_key_value_heads": 2, "use_sliding_window": True, "sliding_window": 6,
        "max_window_layers": 1, "tie_word_embeddings": True}),
    "qwen3-head-dim-default-128": ("qwen3", {"num_key_value_heads": 2}),
    "qwen3-head-dim-32-linear-rope": ("qwen3", {
        "head_dim": 32, "num_key_value_heads": 4, "attention_bias": True,
        "rope_parameters": {"rope_type": "linear", "factor": 4.0, "rope_theta": 1e6}}),
}

# Written by hand, spelled as released checkpoints spell them (transformers 4 era keys).
HAND_WRITTEN_CASES: dict[str, dict[str, Any]] = {
    "llama-legacy-rope-scaling": {
        **TINY, "model_type": "llama", "num_key_value_heads": 2, "rope_theta": 500000.0,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
        "torch_dtype": "bfloat16", "eos_token_id": [7, 9], "transformers_version": "4.43.0",
        "_name_or_path": "meta-llama/tiny", "pretraining_tp": 1,
    },
    "llama-legacy-type-key": {
        **TINY, "model_type": "llama", "rope_scaling": {"type": "linear", "factor": 2.0},
        "rope_parameters": {"rope_type": "default", "rope_theta": 20000.0},  # rope_scaling wins
        "torch_dtype": "float16", "dtype": "float32",
    },
    "llama3-rope-parameters-without-original-max": {
        **TINY, "model_type": "llama", "num_key_value_heads": 2,
        "rope_parameters": {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0,
                            "high_freq_factor": 4.0, "rope_theta": 10000.0},
    },
    "mistral-legacy-null-window": {
        **TINY, "model_type": "mistral", "num_key_value_heads": 1, "rope_theta": 1e6,
        "sliding_window": None, "torch_dtype": "bfloat16",
    },
    "qwen2-legacy-window-switched-off": {
        **TINY, "model_type": "qwen2", "num_key_value_heads": 2, "rope_theta": 1e6,
        "use_sliding_window": False, "sliding_window": 32, "max_window_layers": 1,
        "tie_word_embeddings": True, "torch_dtype": "bfloat16", "rope_scaling": None,
    },
    "qwen3-legacy-layer-types": {
        **TINY, "model_type": "qwen3", "num_key_value_heads": 2, "head_dim": 16,
        "use_sliding_window": True, "sliding_window": 4,
        "layer_types": ["attention", "sliding_attention"],
        "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]},
    },
}

BENCHMARK_CONFIGS_DIR = Path(__file__).parents[3] / "benchmarks" / "configs"
BENCHMARK_CONFIGS = sorted(BENCHMARK_CONFIGS_DIR.glob("*/config.json"))


def saved_config_dir(directory: Path, case: str) -> Path:
    model_type, keywords = SAVED_CASES[case]
    config = CONFIG_CLASSES[model_type](
        **{**TINY, **keywords}, architectures=[ARCHITECTURES[model_type]]
    )
    config.save_pretrained(directory)
    return directory / "config.json"


def hand_written_config(directory: Path, case: str) -> Path:
    values = HAND_WRITTEN_CASES[case]
    values = {**values, "architectures": [ARCHITECTURES[values["model_type"]]]}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(values))
    return directory / "config.json"


def assert_same_attributes(ours: Any, reference: Any) -> None:
    for name in READ_ATTRIBUTES:
        ours_value = getattr(ours, name, MISSING)
        reference_value = getattr(reference, name, MISSING)
        assert ours_value == reference_value, (
            f"{name}: ours {ours_value!r}, AutoConfig {reference_value!r}"
        )
        assert type(ours_value) is type(reference_value), name


def build_model(config: Any) -> torch.nn.Module:
    [spec] = [
        spec for spec in tenon_models()
        if config.architectures[0] in spec.capabilities.architectures
    ]
    model_class = import_target(spec.target)
    build = ModelBuildContext(
        dtype=torch.float32, device=torch.device("cpu"), quant_scheme=NoQuantScheme()
    )
    model = model_class.from_config(config, build)
    fill_dummy_weights(model)
    return model.eval()


def assert_same_logits(ours: Any, reference: Any) -> None:
    # Longer than the llama3 case's original_max_position_embeddings (16), past the linear ones'.
    prompts = random_prompts((40, 3, 17), int(reference.vocab_size), seed=5)
    ours_logits = prefill_logits(build_model(ours), prompts)
    reference_logits = prefill_logits(build_model(reference), prompts)
    for ours_rows, reference_rows in zip(ours_logits, reference_logits, strict=True):
        assert ours_rows.std() > 0.01  # a real model, not zeros
        assert torch.equal(ours_rows, reference_rows)


def assert_matches_auto_config(file_path: Path) -> None:
    """Our reading of `file_path` has AutoConfig's attributes and gives its model's logits;
    skips where this transformers cannot read the config at all."""
    ours = read_hf_config(file_path)
    try:
        reference = transformers.AutoConfig.from_pretrained(str(file_path), local_files_only=True)
    except Exception as error:  # transformers 5.17 refuses legacy layer-type names (5.24 maps them)
        if "layer_types" not in str(error):
            raise
        pytest.skip(f"transformers {transformers.__version__} cannot read this config: {error}")
    assert isinstance(ours, HFConfig)
    assert_same_attributes(ours, reference)
    assert_same_logits(ours, reference)


@pytest.mark.parametrize("case", sorted(SAVED_CASES))
def test_saved_config_matches_auto_config(tmp_path: Path, case: str) -> None:
    assert_matches_auto_config(saved_config_dir(tmp_path / case, case))


@pytest.mark.parametrize("case", sorted(HAND_WRITTEN_CASES))
def test_hand_written_config_matches_auto_config(tmp_path: Path, case: str) -> None:
    assert_matches_auto_config(hand_written_config(tmp_path / case, case))


@pytest.mark.parametrize("file_path", BENCHMARK_CONFIGS, ids=lambda path: path.parent.name)
def test_benchmark_configs_match_auto_config(file_path: Path) -> None:
    ours = read_hf_config(file_path)
    assert isinstance(ours, HFConfig)
    assert_same_attributes(ours, transformers.AutoConfig.from_pretrained(str(file_path)))


def test_benchmark_configs_are_present() -> None:
    assert {path.parent.name for path in BENCHMARK_CONFIGS} >= {"llama-3.1-8b", "qwen3-8b"}


@pytest.mark.parametrize("model_type", sorted(CONFIG_CLASSES))
def test_defaults_equal_the_transformers_class_defaults(model_type: str) -> None:
    config_class = CONFIG_CLASSES[model_type]
    class_defaults = {field.name: field.default for field in dataclasses.fields(config_class)}
    defaults = model_type_defaults(model_type)
    assert defaults is not None
    assert {**BASE_FIELDS, **defaults.fields} == class_defaults
    assert config_class.default_theta == DEFAULT_ROPE_THETA
    assert config_class.default_rope_type == "default" and config_class.attribute_map == {}


def test_unknown_model_type_falls_back_to_auto_config(tmp_path: Path) -> None:
    config = transformers.GPTNeoXConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        vocab_size=50, rotary_pct=0.5, architectures=["GPTNeoXForCausalLM"],
    )
    config.save_pretrained(tmp_path)
    loaded = read_hf_config(tmp_path / "config.json")
    assert type(loaded) is transformers.GPTNeoXConfig
    assert (loaded.hidden_size, loaded.num_hidden_layers) == (32, 2)
    assert loaded.architectures == ["GPTNeoXForCausalLM"]
    assert to_transformers_config(loaded) is loaded


def test_missing_model_type_goes_to_auto_config(tmp_path: Path) -> None:
    values = {**TINY, "architectures": ["LlamaForCausalLM"]}
    (tmp_path / "config.json").write_text(json.dumps(values))
    with pytest.raises(ValueError, match="model_type"):
        read_hf_config(tmp_path / "config.json")


def test_to_transformers_gives_the_auto_config_back(tmp_path: Path) -> None:
    file_path = hand_written_config(tmp_path / "model", "llama-legacy-rope-scaling")
    ours = read_hf_config(file_path)
    converted = to_transformers_config(ours)
    reference = transformers.AutoConfig.from_pretrained(str(file_path))
    assert type(converted) is transformers.LlamaConfig
    assert converted.to_dict() == reference.to_dict()
    assert converted.name_or_path == str(file_path)


def test_to_dict_and_text_config(tmp_path: Path) -> None:
    ours = read_hf_config(hand_written_config(tmp_path / "model", "llama-legacy-rope-scaling"))
    reference = transformers.AutoConfig.from_pretrained(str(tmp_path / "model" / "config.json"))
    assert ours.get_text_config() is ours
    ours_dict, reference_dict = ours.to_dict(), reference.to_dict()
    keys = ("dtype", "rope_parameters", "head_dim", "num_key_value_heads", "eos_token_id",
            "architectures")
    for key in keys:
        assert ours_dict[key] == reference_dict[key], key
    assert ours_dict["dtype"] == "bfloat16"
    assert "rope_scaling" not in ours_dict and "torch_dtype" not in ours_dict
    assert json.loads(json.dumps(ours_dict)) == ours_dict


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden_size": "64"}, "hidden_size must be a positive integer"),
        ({"num_attention_heads": 0}, "num_attention_heads must be a positive integer"),
        ({"num_attention_heads": 5}, "not a multiple of num_attention_heads"),
        ({"torch_dtype": "bfloat17"}, "not a torch dtype"),
        ({"rope_scaling": "llama3"}, "rope parameters must be a JSON object"),
        ({"layer_types": ["full_attention"]}, "layer_types has 1 entries"),
    ],
)
def test_bad_values_are_reported(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    (tmp_path / "config.json").write_text(json.dumps({**TINY, "model_type": "llama", **change}))
    with pytest.raises(ValueError, match=message):
        read_hf_config(tmp_path / "config.json")


def test_malformed_json_is_reported(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "llama",')
    with pytest.raises(ValueError, match="not valid JSON"):
        read_hf_config(tmp_path / "config.json")
