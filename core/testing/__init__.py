"""tenon.testing: the plugin author's kit.

Conformance suites, each a class to subclass in a `test_*.py` file (name the subclass `Test...`
and pytest collects the inherited tests), or to run without pytest via `run_conformance`:

- `AttentionBackendConformance`: a backend against the reference backend on random paged layouts;
- `ModelArchitectureConformance`: a model against HF transformers, unit level and engine level;
- `PlatformConformance`: a platform's smoke suite, and the engine on it;
- `QuantSchemeConformance`: linear layers under a scheme against float math, and the engine;
- `ModelLoaderConformance`: a loader on a checkpoint in its format against HF's logits;
- `OpConformance`: a kernel op (rms_norm, silu_and_mul, rotary) against the torch reference;
- `KVConnectorConformance`: a KV connector between real engines (disaggregation, restart,
  preemption, failed and damaged loads, aborts) against an engine without one;
- `KVTierConformance`: a KV tier storing, looking up and loading blocks by hash (capacity,
  damaged blocks, persistence).

Helpers: `temporary_distribution` (publish a plugin module through a real entry point for a
`with` block, as `pip install` would), `paged_runner` (greedy decoding and prefill logits on a
real paged KV cache), `paged_layouts` (random paged attention inputs), `hf_reference` (tiny
random HF models and their outputs).

Names are imported lazily, so `import tenon.testing.paged_runner` pulls in neither pytest nor
transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AttentionBackendConformance": "tenon.testing.attention_conformance",
    "ModelArchitectureConformance": "tenon.testing.model_conformance",
    "ModelReference": "tenon.testing.model_conformance",
    "PlatformConformance": "tenon.testing.platform_conformance",
    "QuantSchemeConformance": "tenon.testing.quant_conformance",
    "ModelLoaderConformance": "tenon.testing.loader_conformance",
    "OpConformance": "tenon.testing.op_conformance",
    "KVConnectorConformance": "tenon.testing.kv_connector_conformance",
    "KVTierConformance": "tenon.testing.kv_tier_conformance",
    "ConformanceSuite": "tenon.testing.suite",
    "SuiteReport": "tenon.testing.suite",
    "run_conformance": "tenon.testing.suite",
    "temporary_distribution": "tenon.testing.distribution",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tenon.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
