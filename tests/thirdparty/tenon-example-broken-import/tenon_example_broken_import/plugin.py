"""Imports a dependency that is not installed, as a plugin with a missing extra would."""

from __future__ import annotations

from collections.abc import Sequence

import tenon_example_missing_kernels  # noqa: F401 - deliberately absent

from tenon.spec import AttentionBackendSpec, AttentionCapabilities, hookimpl


@hookimpl
def tenon_attention_backends() -> Sequence[AttentionBackendSpec]:
    return [
        AttentionBackendSpec(
            name="example-broken",
            target="tenon_example_missing_kernels:Backend",
            api_version="1.0",
            capabilities=AttentionCapabilities(),
        )
    ]
