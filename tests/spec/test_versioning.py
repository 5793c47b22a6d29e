"""The versioned plugin API: which api_versions load, and deprecated forms that keep working."""

from __future__ import annotations

import types
import warnings

import attrs
import pytest

from tenon.plugin_host import PluginStatus, StaticEntryPoint, load_plugins
from tenon.spec import (
    API_VERSION,
    AttentionBackendSpec,
    AttentionCapabilities,
    PlatformCapabilities,
    PluginKind,
    Requirements,
    TenonDeprecationWarning,
    hookimpl,
    supported_range,
    unsupported_reason,
    version,
)
from tenon.spec.deprecation import DEPRECATIONS, RenamedField, renamed_fields


def test_this_release_is_api_1_0() -> None:
    assert (API_VERSION, supported_range()) == ("1.0", ">=1.0,<=1.0")


@pytest.mark.parametrize("api_version", ["1.0", "1.0.7"])
def test_same_major_and_no_newer_minor_is_supported(api_version: str) -> None:
    assert unsupported_reason(api_version) is None


@pytest.mark.parametrize("api_version", ["0.9", "1.1", "2.0"])
def test_other_versions_say_which_versions_work(api_version: str) -> None:
    assert unsupported_reason(api_version) == (
        f"written for tenon.spec API {api_version}, but this Tenon provides API 1.0 and loads "
        "plugins for API >=1.0,<=1.0"
    )


def test_a_later_minor_release_still_loads_older_minors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(version, "API_VERSION", "1.3")
    assert [unsupported_reason(v) is None for v in ("1.0", "1.3", "1.4")] == [True, True, False]
    assert unsupported_reason("1.4").endswith("loads plugins for API >=1.0,<=1.3")


def test_malformed_version_is_refused() -> None:
    assert unsupported_reason("1") == "api_version must look like 'MAJOR.MINOR', got '1'"


def _backend_spec(name: str, api_version: str) -> AttentionBackendSpec:
    return AttentionBackendSpec(
        name=name,
        target="tenon.plugins.attention.reference:ReferenceAttentionBackend",
        api_version=api_version,
        capabilities=AttentionCapabilities(),
        priority=20,
    )


def _entry_point(name: str, loader: object) -> StaticEntryPoint:
    return StaticEntryPoint(name=name, loader=loader, distribution=f"tenon-{name}")


def _plugin(**hooks: object) -> types.ModuleType:
    module = types.ModuleType("versioning_plugin")
    for hook_name, build in hooks.items():
        setattr(module, hook_name, hookimpl(build))
    return module


def test_unsupported_and_broken_plugins_are_quarantined_and_the_rest_works() -> None:
    future = _plugin(tenon_attention_backends=lambda: [_backend_spec("future", "1.1")])
    good = _plugin(tenon_attention_backends=lambda: [_backend_spec("good", "1.0")])

    def broken() -> object:
        raise ImportError("No module named 'missing_kernels'")

    host = load_plugins(
        environ={},
        entry_points=[
            _entry_point("future", lambda: future),
            _entry_point("broken", broken),
            _entry_point("good", lambda: good),
        ],
    )
    statuses = {record.name: (record.status, record.error) for record in host.plugins}
    assert statuses == {
        "future": (PluginStatus.LOADED, None),  # loaded; its spec is what gets quarantined
        "broken": (PluginStatus.QUARANTINED, "ImportError: No module named 'missing_kernels'"),
        "good": (PluginStatus.LOADED, None),
    }
    [quarantined] = host.quarantined_specs
    assert (quarantined.name, quarantined.reason) == ("future", unsupported_reason("1.1"))
    _, decision = host.select(PluginKind.ATTENTION_BACKEND, Requirements())
    assert decision.chosen is not None and decision.chosen.name == "good"
    assert [v.reasons for v in decision.candidates if v.name == "future"] == [
        (f"rejected: quarantined: {unsupported_reason('1.1')}",)
    ]


def test_deprecated_keyword_works_with_a_warning_pointing_at_the_caller() -> None:
    with pytest.warns(TenonDeprecationWarning) as caught:
        old = AttentionCapabilities(supports_cuda_graphs=True, dtypes=("float16",))
    assert old == AttentionCapabilities(supports_graphs=True, dtypes=("float16",))
    [warning] = caught
    assert str(warning.message) == (
        "AttentionCapabilities(supports_cuda_graphs=...) is deprecated since tenon.spec API 1.0 "
        "and stops working in API 2.0: write AttentionCapabilities(supports_graphs=...)"
    )
    assert warning.filename == __file__
    with pytest.warns(TenonDeprecationWarning):
        platform = PlatformCapabilities(device_type="cuda", supports_cuda_graphs=True)
    assert platform.supports_graphs is True
    assert platform.unmet(Requirements(needs_graphs=True)) == ()


def test_new_keyword_and_evolve_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        record = attrs.evolve(AttentionCapabilities(supports_graphs=False), supports_graphs=True)
    assert record.supports_graphs is True


def test_deprecated_form_keeps_working_in_the_next_minor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(version, "API_VERSION", "1.1")
    with pytest.warns(TenonDeprecationWarning, match="stops working in API 2.0"):
        assert AttentionCapabilities(supports_cuda_graphs=True).supports_graphs is True


def test_deprecated_form_is_removed_at_the_next_major(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(version, "API_VERSION", "2.0")
    with pytest.raises(TypeError) as error:
        AttentionCapabilities(supports_cuda_graphs=True)
    assert str(error.value) == (
        "AttentionCapabilities(supports_cuda_graphs=...) was renamed supports_graphs in "
        "tenon.spec API 1.0 and removed in API 2.0: write AttentionCapabilities(supports_graphs=...)"
    )


def test_both_names_at_once_is_an_error() -> None:
    with pytest.raises(TypeError, match="pass only supports_graphs="):
        AttentionCapabilities(supports_cuda_graphs=True, supports_graphs=True)


def test_a_plugin_on_the_deprecated_form_registers_and_is_selected() -> None:
    def specs() -> list[AttentionBackendSpec]:
        return [
            attrs.evolve(
                _backend_spec("old-style", "1.0"),
                capabilities=AttentionCapabilities(supports_cuda_graphs=True),
            )
        ]

    with pytest.warns(TenonDeprecationWarning):
        host = load_plugins(
            environ={},
            entry_points=[_entry_point("old-style", lambda: _plugin(tenon_attention_backends=specs))],
        )
    _, decision = host.select(PluginKind.ATTENTION_BACKEND, Requirements(needs_graphs=True))
    assert decision.chosen is not None and decision.chosen.name == "old-style"


def test_after_removal_the_plugin_is_quarantined_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(version, "API_VERSION", "2.0")

    def specs() -> list[AttentionBackendSpec]:
        return [
            AttentionBackendSpec(
                name="old-style",
                target="old_style:Backend",
                api_version="2.0",
                capabilities=AttentionCapabilities(supports_cuda_graphs=True),
            )
        ]

    host = load_plugins(
        environ={},
        entry_points=[_entry_point("old-style", lambda: _plugin(tenon_attention_backends=specs))],
    )
    [record] = host.plugins
    assert (record.status, record.phase) == (PluginStatus.QUARANTINED, "tenon_attention_backends()")
    assert record.error is not None
    assert record.error.endswith("write AttentionCapabilities(supports_graphs=...)")


def test_every_declared_deprecation_names_a_real_field() -> None:
    assert set(DEPRECATIONS) == {"AttentionCapabilities", "PlatformCapabilities"}
    for rename in (rename for renames in DEPRECATIONS.values() for rename in renames):
        assert version.parse(rename.removed_in)[0] > version.parse(rename.deprecated_in)[0]


def test_removal_must_be_a_later_major() -> None:
    with pytest.raises(ValueError, match="removed_in must be a later major release"):
        RenamedField(old="a", new="b", deprecated_in="1.0", removed_in="1.1")


def test_renaming_to_a_missing_field_is_refused() -> None:
    rename = RenamedField(old="colour", new="color", deprecated_in="1.0", removed_in="2.0")
    with pytest.raises(ValueError, match="must have a field 'color' and none named 'colour'"):

        @renamed_fields(rename)
        @attrs.frozen
        class Paint:
            colour: str
