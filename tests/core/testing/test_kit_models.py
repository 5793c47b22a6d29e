"""The model suite of the kit, run on the four built-in architectures (proving the kit itself).

The built-in models are installed with Tenon, so the engine-level checks run too."""

from __future__ import annotations

import transformers

from tenon.plugins.models.llama import LlamaForCausalLM
from tenon.plugins.models.mistral import MistralForCausalLM
from tenon.plugins.models.qwen2 import Qwen2ForCausalLM
from tenon.plugins.models.qwen3 import Qwen3ForCausalLM
from tenon.plugins.models.registration import tenon_models
from tenon.testing import ModelArchitectureConformance

SPECS = {spec.name: spec for spec in tenon_models()}


class TestLlama(ModelArchitectureConformance):
    architecture_class = LlamaForCausalLM
    hf_model_class = transformers.LlamaForCausalLM
    hf_config_overrides = {"num_key_value_heads": 2, "attention_bias": True}
    spec = SPECS["llama"]


class TestMistral(ModelArchitectureConformance):
    architecture_class = MistralForCausalLM
    hf_model_class = transformers.MistralForCausalLM
    # A window shorter than the longest prompt, so it binds.
    hf_config_overrides = {"num_key_value_heads": 1, "sliding_window": 8}
    spec = SPECS["mistral"]


class TestQwen2(ModelArchitectureConformance):
    architecture_class = Qwen2ForCausalLM
    hf_model_class = transformers.Qwen2ForCausalLM
    hf_config_overrides = {"num_key_value_heads": 2, "tie_word_embeddings": True}
    spec = SPECS["qwen2"]


class TestQwen3(ModelArchitectureConformance):
    architecture_class = Qwen3ForCausalLM
    hf_model_class = transformers.Qwen3ForCausalLM
    hf_config_overrides = {"num_key_value_heads": 2, "head_dim": 32}
    spec = SPECS["qwen3"]
