"""Registers Tenon's torch implementations of the kernel ops (imports nothing heavy)."""

from __future__ import annotations

from collections.abc import Sequence

from tenon.spec import API_VERSION, OpCapabilities, OpSpec, hookimpl
from tenon.spec.ops import OP_NAMES

REFERENCE_MODULE = "tenon.layers.ops_reference"


@hookimpl
def tenon_ops() -> Sequence[OpSpec]:
    return [
        OpSpec(
            name=f"torch-{op.replace('_', '-')}",
            target=f"{REFERENCE_MODULE}:{op}",
            api_version=API_VERSION,
            priority=0,
            description=f"plain torch {op} on any device; the reference",
            capabilities=OpCapabilities(op=op, supports_graphs=True),
        )
        for op in OP_NAMES
    ]
