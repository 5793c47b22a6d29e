"""The models plugin's registration hook: one spec per architecture, each target importable."""

from __future__ import annotations

import importlib

import torch

from tenon.plugins.models import registration
from tenon.spec import API_VERSION, ModelSpec
from tenon.spec.model import ModelArchitecture


def test_one_spec_per_architecture() -> None:
    specs = registration.tenon_models()
    assert [(spec.name, spec.target, spec.capabilities.architectures) for spec in specs] == [
        ("llama", "tenon.plugins.models.llama:LlamaForCausalLM", ("LlamaForCausalLM",)),
        ("mistral", "tenon.plugins.models.mistral:MistralForCausalLM", ("MistralForCausalLM",)),
        ("qwen2", "tenon.plugins.models.qwen2:Qwen2ForCausalLM", ("Qwen2ForCausalLM",)),
        ("qwen3", "tenon.plugins.models.qwen3:Qwen3ForCausalLM", ("Qwen3ForCausalLM",)),
    ]
    assert all(isinstance(spec, ModelSpec) and spec.api_version == API_VERSION for spec in specs)


def test_targets_are_model_architectures() -> None:
    for spec in registration.tenon_models():
        module_name, _, class_name = spec.target.partition(":")
        target = getattr(importlib.import_module(module_name), class_name)
        assert class_name == spec.capabilities.architectures[0]
        assert issubclass(target, torch.nn.Module)
        assert issubclass(target, ModelArchitecture)
