"""Registers the "none" quantization scheme (imports nothing heavy)."""

from __future__ import annotations

from collections.abc import Sequence

from tenon.spec import API_VERSION, QuantCapabilities, QuantSchemeSpec, hookimpl


@hookimpl
def tenon_quant_schemes() -> Sequence[QuantSchemeSpec]:
    return [
        QuantSchemeSpec(
            name="none",
            target="tenon.plugins.quantization.none:NoQuantScheme",
            api_version=API_VERSION,
            priority=0,
            description="unquantized weights in the model dtype, applied with a plain matmul",
            capabilities=QuantCapabilities(methods=("none",)),
        )
    ]
