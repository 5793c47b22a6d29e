"""Tenon: an LLM inference and serving engine built as a plugin framework.

Kept light on purpose: `import tenon.spec` runs this file first, so the public names below load
lazily on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "LLM": "tenon.frontend.llm",
    "SamplingParams": "tenon.sampling.params",
    "RequestOutput": "tenon.outputs",
    "CompletionOutput": "tenon.outputs",
    "EngineArgs": "tenon.engine_args",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'tenon' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
