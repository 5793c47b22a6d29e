"""Fakes for plugin-host tests: in-memory plugins published through `StaticEntryPoint`, spec
builders, and throwaway modules for targets and probes. Every test builds its own host."""

from __future__ import annotations

import itertools
import sys
import textwrap
import types
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tenon.plugin_host import PluginHost, StaticEntryPoint, load_plugins
from tenon.spec import (
    API_VERSION,
    AttentionBackendSpec,
    AttentionCapabilities,
    ModelCapabilities,
    ModelSpec,
    PlatformCapabilities,
    PlatformSpec,
    hookimpl,
)


def _hook(value: Any) -> Callable[[], Any]:
    def implementation() -> Any:
        return value() if callable(value) else value

    return hookimpl(implementation)


def make_plugin(**hooks: Any) -> types.ModuleType:
    """A plugin module whose hook `name` returns `value` (or calls it, when it is callable)."""
    plugin = types.ModuleType("fake_plugin")
    for name, value in hooks.items():
        setattr(plugin, name, _hook(value))
    return plugin


def make_entry_point(
    name: str,
    plugin: object = None,
    *,
    distribution: str = "tenon-fake",
    version: str = "1.0",
    error: BaseException | None = None,
) -> StaticEntryPoint:
    def loader() -> object:
        if error is not None:
            raise error
        return plugin

    return StaticEntryPoint(name=name, loader=loader, distribution=distribution, version=version)


def attention_spec(
    name: str,
    *,
    priority: int = 0,
    head_sizes: tuple[int, ...] | None = None,
    target: str = "fake_module:Backend",
    api_version: str = API_VERSION,
) -> AttentionBackendSpec:
    return AttentionBackendSpec(
        name=name,
        target=target,
        api_version=api_version,
        priority=priority,
        capabilities=AttentionCapabilities(head_sizes=head_sizes),
    )


def model_spec(name: str, architecture: str, *, api_version: str = API_VERSION) -> ModelSpec:
    return ModelSpec(
        name=name,
        target="fake_module:Model",
        api_version=api_version,
        capabilities=ModelCapabilities(architectures=(architecture,)),
    )


def platform_spec(name: str, probe: str, *, priority: int = 0) -> PlatformSpec:
    return PlatformSpec(
        name=name,
        target="fake_module:Platform",
        probe=probe,
        api_version=API_VERSION,
        priority=priority,
        capabilities=PlatformCapabilities(device_type=name),
    )


@pytest.fixture
def fakes() -> types.SimpleNamespace:
    """The builders above, as one object (test folders here have no package to import from)."""
    return types.SimpleNamespace(
        plugin=make_plugin,
        entry_point=make_entry_point,
        attention_spec=attention_spec,
        model_spec=model_spec,
        platform_spec=platform_spec,
    )


@pytest.fixture
def build_host() -> Callable[..., PluginHost]:
    """A fresh host from the given entry points and environment (never os.environ)."""

    def build(
        *entry_points: StaticEntryPoint, environ: Mapping[str, str] | None = None
    ) -> PluginHost:
        return load_plugins(environ=dict(environ or {}), entry_points=list(entry_points))

    return build


@pytest.fixture
def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    """Writes a uniquely named module on sys.path; returns its name. Removed afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    counter = itertools.count()
    names: list[str] = []

    def write(source: str) -> str:
        name = f"tenon_test_module_{tmp_path.name.replace('-', '_')}_{next(counter)}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)
