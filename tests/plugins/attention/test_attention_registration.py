"""The built-in attention backends' registration: importable targets and declared capabilities."""

from __future__ import annotations

import importlib

import pluggy

from tenon.plugins.attention import registration
from tenon.plugins.attention.reference import ReferenceAttentionBackend
from tenon.plugins.attention.sdpa import SdpaAttentionBackend
from tenon.spec import (
    API_VERSION,
    PROJECT_NAME,
    AttentionBackendSpec,
    Requirements,
    hookspecs,
)


def _registered_specs() -> dict[str, AttentionBackendSpec]:
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(registration)
    [specs] = manager.hook.tenon_attention_backends()
    return {spec.name: spec for spec in specs}


def test_reference_backend_registers_for_any_device_and_layout() -> None:
    specs = _registered_specs()
    assert sorted(specs) == ["reference", "torch-sdpa"]  # triton: its own plugin
    spec = specs["reference"]
    assert (spec.name, spec.priority, spec.api_version) == ("reference", 0, API_VERSION)
    module, _, qualname = spec.target.partition(":")
    assert getattr(importlib.import_module(module), qualname) is ReferenceAttentionBackend
    wanted = Requirements(
        device_type="cuda",
        dtype="bfloat16",
        head_size=80,
        block_size=7,
        needs_batch_invariance=True,
        sliding_window=True,
    )
    assert spec.capabilities.unmet(wanted) == ()
    assert spec.capabilities.unmet(Requirements(needs_graphs=True)) == (
        "does not support graph capture",
    )


def test_sdpa_backend_outranks_the_reference_but_is_not_batch_invariant() -> None:
    spec = _registered_specs()["torch-sdpa"]
    assert (spec.priority, spec.api_version) == (10, API_VERSION)
    module, _, qualname = spec.target.partition(":")
    assert getattr(importlib.import_module(module), qualname) is SdpaAttentionBackend
    wanted = Requirements(
        device_type="cuda", dtype="float16", head_size=80, block_size=7, sliding_window=True
    )
    assert spec.capabilities.unmet(wanted) == ()
    assert spec.capabilities.unmet(Requirements(dtype="float8_e4m3fn")) != ()
    assert spec.capabilities.unmet(Requirements(needs_batch_invariance=True)) != ()
    assert spec.capabilities.unmet(Requirements(needs_graphs=True)) != ()
