"""The plugin module the entry point names: declarations only, nothing heavy imported."""

from __future__ import annotations

from collections.abc import Sequence

from tenon.spec import ModelCapabilities, ModelSpec, hookimpl

SPEC = ModelSpec(
    name="example-gpt-neox",
    target="tenon_example_gpt_neox.model:GPTNeoXForCausalLM",
    # The contract version this plugin was written against, pinned on purpose.
    api_version="1.0",
    description="GPT-NeoX / Pythia: parallel residual, partial rotary, fused per-head QKV",
    capabilities=ModelCapabilities(architectures=("GPTNeoXForCausalLM",)),
)


@hookimpl
def tenon_models() -> Sequence[ModelSpec]:
    return [SPEC]
