# mypy: disable-error-code="empty-body"
"""The hooks of the `tenon` project, sectioned by the phase of the lifecycle that calls them.

Rules for every hook:
- Tenon calls hooks with keyword arguments only, so a spec can grow arguments without breaking
  plugins whose implementation takes fewer.
- Hooks wire things up at start-up. None is ever called in the per-step hot path.
- Registration hooks are declarative: return spec records that name the implementation lazily
  ("package.module:Object"); import nothing heavy (torch, kernels) at module import or in the
  hook. Every process (frontend, engine core, workers) reruns discovery and must get the same
  registry.

A plugin is a module (or object) with functions decorated by `tenon.spec.hookimpl`, published
through the entry-point group "tenon.plugins":

    [project.entry-points."tenon.plugins"]
    my-attention = "my_package.plugin"
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tenon.spec.markers import hookspec
from tenon.spec.records import (
    AttentionBackendSpec,
    DrafterSpec,
    KVConnectorSpec,
    KVTierSpec,
    ModelLoaderSpec,
    ModelSpec,
    OpSpec,
    PlatformSpec,
    QuantSchemeSpec,
)

# --- Discovery: called once per process, when the plugin host builds its registry. -----------
# Calling rule: all implementations are called; their returned sequences are concatenated.
# Names must be unique within a kind; a duplicate name is reported as a conflict and the later
# registration is quarantined.


@hookspec
def tenon_platforms() -> Sequence[PlatformSpec]:
    """Hardware platforms: each spec names a `tenon.spec.platform.Platform` and a cheap probe."""


@hookspec
def tenon_models() -> Sequence[ModelSpec]:
    """Model architectures: each names a `tenon.spec.model.ModelArchitecture` subclass and the
    HF `architectures` strings it serves."""


@hookspec
def tenon_attention_backends() -> Sequence[AttentionBackendSpec]:
    """Attention backends: each names a `tenon.spec.attention.AttentionBackend` subclass."""


@hookspec
def tenon_quant_schemes() -> Sequence[QuantSchemeSpec]:
    """Quantization schemes: each names a `tenon.spec.quantization.QuantScheme` subclass."""


@hookspec
def tenon_drafters() -> Sequence[DrafterSpec]:
    """Speculative drafters: each names a `tenon.spec.drafter.Drafter` subclass."""


@hookspec
def tenon_kv_tiers() -> Sequence[KVTierSpec]:
    """KV cache tiers below the device (CPU, disk, remote): each names a `KVTier` subclass."""


@hookspec
def tenon_kv_connectors() -> Sequence[KVConnectorSpec]:
    """KV connectors: each names a `KVConnectorScheduler` and a `KVConnectorWorker` subclass."""


@hookspec
def tenon_model_loaders() -> Sequence[ModelLoaderSpec]:
    """Checkpoint loaders (safetensors, GGUF, dummy, ...): each names a `ModelLoader`."""


@hookspec
def tenon_ops() -> Sequence[OpSpec]:
    """Kernel ops (fused RMSNorm, SiLU-and-mul, rotary, ...): each names one function
    implementing one op of `tenon.spec.ops`."""


# --- Configuration: called once, after flags are parsed and before the engine is built. ------


@hookspec
def tenon_configure(config: Any) -> None:
    """Validate or adjust the engine config (`tenon.config.EngineConfig`) before start-up.

    Called in registration order on every loaded plugin. Raise `ValueError` with a message that
    says what the user should change to refuse a configuration; set fields on `config` to adjust
    it (say so in a log line: silent changes surprise operators). Return nothing.
    """
