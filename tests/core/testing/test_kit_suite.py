"""The kit's machinery: parameters, shared state, `run_conformance`, `temporary_distribution`."""

from __future__ import annotations

import importlib.metadata
import sys
import types
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from tenon.plugin_host import load_plugins
from tenon.spec import (
    API_VERSION,
    AttentionBackendSpec,
    AttentionCapabilities,
    PluginKind,
    Requirements,
    hookimpl,
)
from tenon.testing import ConformanceSuite, run_conformance, temporary_distribution


class CountingSuite(ConformanceSuite):
    builds: list[str] = []

    def parameters(self) -> Mapping[str, Sequence[Any]]:
        return {"size": (1, 2), "pair": ((3, 4),)}

    def test_plain(self) -> None:
        assert self.shared("value", lambda: self.builds.append("built") or 7) == 7

    def test_sizes(self, size: int, pair: tuple[int, int]) -> None:
        assert size < 2, f"size {size} is too big"

    def test_skips(self) -> None:
        pytest.skip("not declared")


def test_run_conformance_expands_parameters_and_reports_each_outcome() -> None:
    report = run_conformance(CountingSuite, check=False)
    assert [(r.name, r.outcome) for r in report.results] == [
        ("test_plain", "passed"),
        ("test_sizes[1-3x4]", "passed"),
        ("test_sizes[2-3x4]", "failed"),
        ("test_skips", "skipped"),
    ]
    summary = report.summary()
    assert summary.startswith(
        "CountingSuite: 2 passed, 1 skipped, 1 failed\n"
        "  failed test_sizes[2-3x4]: AssertionError: size 2 is too big"
    )
    assert summary.endswith("\n  skipped test_skips: not declared")
    with pytest.raises(AssertionError, match="CountingSuite: 2 passed, 1 skipped, 1 failed"):
        run_conformance(CountingSuite)


def test_shared_state_is_built_once_per_suite_class() -> None:
    class Other(CountingSuite):
        builds: list[str] = []

    run_conformance(CountingSuite, check=False)
    run_conformance(CountingSuite, check=False)
    run_conformance(Other, check=False)
    assert (CountingSuite.builds, Other.builds) == (["built"], ["built"])


def test_a_test_method_with_unknown_arguments_is_refused() -> None:
    class NeedsFixture(ConformanceSuite):
        def test_with_tmp_path(self, tmp_path: Any) -> None:
            pass

    with pytest.raises(TypeError, match="takes tmp_path, which are not parameters of the suite"):
        run_conformance(NeedsFixture)


def _plugin_module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)

    class Backend:
        pass

    module.Backend = Backend  # type: ignore[attr-defined]

    def tenon_attention_backends() -> list[AttentionBackendSpec]:
        return [
            AttentionBackendSpec(
                name="kit-temporary",
                target=f"{name}:Backend",
                api_version=API_VERSION,
                priority=-5,
                capabilities=AttentionCapabilities(),
            )
        ]

    module.tenon_attention_backends = hookimpl(tenon_attention_backends)  # type: ignore[attr-defined]
    return module


def test_temporary_distribution_is_discovered_like_a_pip_install() -> None:
    module = _plugin_module("tenon_kit_temporary_plugin")
    with temporary_distribution("kit-temporary", module, version="1.2.3"):
        assert importlib.metadata.version("tenon-test-kit-temporary") == "1.2.3"
        host = load_plugins(environ={})
        [record] = [r for r in host.plugins if r.name == "kit-temporary"]
        assert (record.origin.distribution, record.is_builtin) == ("tenon-test-kit-temporary", False)
        backend, decision = host.select(
            PluginKind.ATTENTION_BACKEND, Requirements(), requested="kit-temporary"
        )
        assert backend is module.Backend  # type: ignore[attr-defined]
    assert "tenon_kit_temporary_plugin" not in sys.modules
    host = load_plugins(environ={})
    assert all(r.name != "kit-temporary" for r in host.plugins)


def test_temporary_distribution_refuses_the_core_name_and_non_modules() -> None:
    with pytest.raises(ValueError, match="cannot be named 'tenon'"):
        with temporary_distribution("x", types.ModuleType("x"), distribution="Tenon"):
            pass
    with pytest.raises(TypeError, match="plugin must be a module"):
        with temporary_distribution("x", object()):  # type: ignore[arg-type]
            pass
