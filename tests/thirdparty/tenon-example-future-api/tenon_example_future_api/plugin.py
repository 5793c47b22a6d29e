"""Declares a model written for tenon.spec API 9.0: the host must quarantine it, not load it."""

from __future__ import annotations

from collections.abc import Sequence

from tenon.spec import ModelCapabilities, ModelSpec, hookimpl


@hookimpl
def tenon_models() -> Sequence[ModelSpec]:
    return [
        ModelSpec(
            name="example-future",
            target="tenon_example_future_api.model:FutureModel",
            api_version="9.0",
            capabilities=ModelCapabilities(architectures=("FutureForCausalLM",)),
        )
    ]
