"""Registers the Llama-family architectures. Imports nothing heavy: targets load lazily."""

from __future__ import annotations

from collections.abc import Sequence

from tenon.spec import API_VERSION, ModelCapabilities, ModelSpec, hookimpl

# (spec name, module under tenon.plugins.models, HF architecture = class name)
_ARCHITECTURES: tuple[tuple[str, str, str], ...] = (
    ("llama", "llama", "LlamaForCausalLM"),
    ("mistral", "mistral", "MistralForCausalLM"),
    ("qwen2", "qwen2", "Qwen2ForCausalLM"),
    ("qwen3", "qwen3", "Qwen3ForCausalLM"),
)


@hookimpl
def tenon_models() -> Sequence[ModelSpec]:
    return [
        ModelSpec(
            name=name,
            target=f"tenon.plugins.models.{module}:{architecture}",
            api_version=API_VERSION,
            description=f"{architecture} built from tenon.layers",
            capabilities=ModelCapabilities(architectures=(architecture,)),
        )
        for name, module, architecture in _ARCHITECTURES
    ]
