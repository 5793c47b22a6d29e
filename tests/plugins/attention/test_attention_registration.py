"""The reference backend's registration: importable target and the declared capabilities."""

from __future__ import annotations

import importlib

import pluggy

from tenon.plugins.attention import registration
from tenon.plugins.attention.reference import ReferenceAttentionBackend
from tenon.spec import API_VERSION, PROJECT_NAME, Requirements, hookspecs


def test_reference_backend_registers_for_any_device_and_layout() -> None:
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(registration)
    [specs] = manager.hook.tenon_attention_backends()
    [spec] = specs
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
