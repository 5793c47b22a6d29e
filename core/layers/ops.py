"""Which implementation of each kernel op (`tenon.spec.ops`) layers call, per device type.

The engine builder selects one implementation per op through the plugin host and installs the
non-reference ones here; layers ask `selected(op, device_type)` and run their own torch code
(`tenon.layers.ops_reference`) when it answers None. One table per process, keyed by device
type, so a CPU engine and a GPU engine can live in one process (tests do).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tenon.spec.ops import OP_NAMES

_installed: dict[str, dict[str, Callable[..., Any]]] = {}


def install(device_type: str, table: Mapping[str, Callable[..., Any] | None]) -> None:
    """Set the implementations for `device_type`; None (or a missing op) means the reference."""
    unknown = set(table) - set(OP_NAMES)
    if unknown:
        raise ValueError(f"unknown ops {sorted(unknown)}; known ops: {', '.join(OP_NAMES)}")
    _installed[device_type] = {op: fn for op, fn in table.items() if fn is not None}


def selected(op: str, device_type: str) -> Callable[..., Any] | None:
    """The installed implementation of `op` on `device_type`, or None for the reference."""
    table = _installed.get(device_type)
    return None if table is None else table.get(op)


def reset() -> None:
    _installed.clear()
