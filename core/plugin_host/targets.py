"""Lazy imports of "package.module:Object" targets, and platform probes.

Only the host calls these, and only for what it selected (or a platform's cheap probe), so a
process never imports an implementation it does not use.
"""

from __future__ import annotations

import importlib
from typing import Any

from tenon.spec import PlatformSpec


def import_target(target: str) -> Any:
    """The object `target` names: import the module, then walk the qualified name."""
    module_name, _, qualname = target.partition(":")
    found: Any = importlib.import_module(module_name)
    for attribute in qualname.split("."):
        found = getattr(found, attribute)
    return found


def run_probe(spec: PlatformSpec) -> str | None:
    """None when the platform is usable in this process, else why not."""
    try:
        usable = import_target(spec.probe)()
    except Exception as error:  # a probe may fail in any way; that only rules its platform out
        return f"probe {spec.probe} failed: {type(error).__name__}: {error}"
    if not usable:
        return f"probe {spec.probe} returned {usable!r} (platform not usable here)"
    return None
