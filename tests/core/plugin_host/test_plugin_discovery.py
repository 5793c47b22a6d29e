"""Discovery: the environment switches, built-ins always loading, and quarantine of plugins
that fail to import, register, or validate."""

from __future__ import annotations

import importlib.metadata

import pytest

from tenon.plugin_host import (
    AutoloadSettings,
    PluginAllowlistError,
    PluginStatus,
    StaticEntryPoint,
    load_plugins,
    make_plugin_manager,
)
from tenon.spec import PluginKind


def _statuses(host):
    return {record.name: record.status for record in host.plugins}


def _attention_names(host):
    return [entry.spec.name for entry in host.specs(PluginKind.ATTENTION_BACKEND)]


@pytest.fixture
def three_plugins(fakes):
    """One built-in (distribution "tenon") and two third-party plugins, one backend each."""
    return [
        fakes.entry_point(
            "builtin",
            fakes.plugin(tenon_attention_backends=[fakes.attention_spec("in-tree")]),
            distribution="tenon",
            version="0.1.0",
        ),
        fakes.entry_point(
            "alpha",
            fakes.plugin(tenon_attention_backends=[fakes.attention_spec("alpha-backend")]),
            distribution="tenon-alpha",
            version="2.3.4",
        ),
        fakes.entry_point(
            "beta",
            fakes.plugin(tenon_attention_backends=[fakes.attention_spec("beta-backend")]),
            distribution="Tenon_Beta",
            version="0.0.1",
        ),
    ]


def test_make_plugin_manager_is_fresh_and_has_the_tenon_hooks():
    first, second = make_plugin_manager(), make_plugin_manager()
    assert first is not second
    assert first.project_name == "tenon"
    for kind in PluginKind:
        assert getattr(first.hook, kind.value).has_spec()
    assert first.hook.tenon_configure.has_spec()


def test_every_plugin_loads_with_its_distribution_and_version(build_host, three_plugins):
    host = build_host(*three_plugins)
    assert [
        (r.name, r.origin.distribution, r.origin.version, r.is_builtin, r.status)
        for r in host.plugins
    ] == [
        ("builtin", "tenon", "0.1.0", True, PluginStatus.LOADED),
        ("alpha", "tenon-alpha", "2.3.4", False, PluginStatus.LOADED),
        ("beta", "Tenon_Beta", "0.0.1", False, PluginStatus.LOADED),
    ]
    assert _attention_names(host) == ["in-tree", "alpha-backend", "beta-backend"]
    assert host.errors == ()


def test_allowlist_loads_only_named_third_party_plugins(build_host, three_plugins):
    host = build_host(*three_plugins, environ={"TENON_PLUGINS": " beta , "})
    assert _statuses(host) == {
        "builtin": PluginStatus.LOADED,
        "alpha": PluginStatus.SKIPPED_BY_ALLOWLIST,
        "beta": PluginStatus.LOADED,
    }
    assert _attention_names(host) == ["in-tree", "beta-backend"]
    host.check_allowlist()  # every allowlisted name exists: no error


def test_empty_allowlist_loads_no_third_party_plugin(build_host, three_plugins):
    host = build_host(*three_plugins, environ={"TENON_PLUGINS": ""})
    assert _attention_names(host) == ["in-tree"]


def test_allowlist_names_a_built_in_without_effect(build_host, three_plugins):
    host = build_host(*three_plugins, environ={"TENON_PLUGINS": "builtin"})
    assert _attention_names(host) == ["in-tree"]
    assert host.errors == ()


def test_unknown_allowlist_name_is_an_error_listing_available_names(build_host, three_plugins):
    host = build_host(*three_plugins, environ={"TENON_PLUGINS": "alpha,gamma"})
    assert _attention_names(host) == ["in-tree", "alpha-backend"]
    message = (
        "TENON_PLUGINS names gamma, which no installed plugin provides; available plugin names: "
        "alpha, beta, builtin. Fix the spelling or install the plugin's package."
    )
    assert host.errors == (message,)
    assert host.report()["errors"] == [message]
    with pytest.raises(PluginAllowlistError) as raised:
        host.check_allowlist()
    assert str(raised.value) == message
    assert raised.value.unknown_names == ("gamma",)
    assert raised.value.available_names == ("alpha", "beta", "builtin")


@pytest.mark.parametrize("value", ["1", "true", "TRUE"])
def test_autoload_off_keeps_only_tenons_own(build_host, fakes, value):
    loaded = []

    def never(name):
        def load():
            loaded.append(name)
            return fakes.plugin()

        return load

    third_party = [
        StaticEntryPoint(name=name, loader=never(name), distribution="tenon-x", version="1")
        for name in ("alpha", "beta")
    ]
    builtin = fakes.entry_point(
        "builtin",
        fakes.plugin(tenon_attention_backends=[fakes.attention_spec("in-tree")]),
        distribution="tenon",
    )
    host = build_host(
        *third_party,
        builtin,
        environ={"TENON_DISABLE_PLUGIN_AUTOLOAD": value, "TENON_PLUGINS": "alpha"},
    )
    assert loaded == []  # skipped entirely: never imported
    assert _statuses(host) == {
        "builtin": PluginStatus.LOADED,
        "alpha": PluginStatus.SKIPPED_AUTOLOAD_DISABLED,
        "beta": PluginStatus.SKIPPED_AUTOLOAD_DISABLED,
    }
    assert _attention_names(host) == ["in-tree"]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, AutoloadSettings(autoload=True, allowlist=None)),
        ({"TENON_DISABLE_PLUGIN_AUTOLOAD": "0"}, AutoloadSettings(autoload=True, allowlist=None)),
        ({"TENON_DISABLE_PLUGIN_AUTOLOAD": "false"}, AutoloadSettings(autoload=True)),
        ({"TENON_DISABLE_PLUGIN_AUTOLOAD": "1"}, AutoloadSettings(autoload=False)),
        ({"TENON_PLUGINS": "a, b,,c"}, AutoloadSettings(allowlist=("a", "b", "c"))),
        ({"TENON_PLUGINS": ""}, AutoloadSettings(allowlist=())),
    ],
)
def test_settings_from_environment(environ, expected):
    assert AutoloadSettings.from_environ(environ) == expected


def test_unknown_autoload_value_is_refused_with_the_accepted_ones():
    with pytest.raises(ValueError, match="TENON_DISABLE_PLUGIN_AUTOLOAD='yes' is not understood"):
        load_plugins(environ={"TENON_DISABLE_PLUGIN_AUTOLOAD": "yes"}, entry_points=[])


@pytest.mark.parametrize(
    "error",
    [
        ImportError("No module named 'fancy_kernels'"),
        SyntaxError("invalid syntax"),
        RuntimeError("CUDA driver too old"),
    ],
)
def test_import_failure_quarantines_only_that_plugin(build_host, three_plugins, fakes, error):
    broken = fakes.entry_point("broken", distribution="tenon-broken", version="0.9", error=error)
    host = build_host(*three_plugins, broken)
    record = next(r for r in host.plugins if r.name == "broken")
    assert record.status is PluginStatus.QUARANTINED
    assert record.phase == "import"
    assert (record.origin.distribution, record.origin.version) == ("tenon-broken", "0.9")
    assert record.error == f"{type(error).__name__}: {error}"
    assert f"{type(error).__name__}: {error}" in record.traceback
    assert host.quarantined_plugins == (record,)
    assert _attention_names(host) == ["in-tree", "alpha-backend", "beta-backend"]


def test_a_failing_built_in_is_quarantined_too(build_host, three_plugins, fakes):
    broken = fakes.entry_point("models", distribution="tenon", error=ImportError("no torch"))
    host = build_host(*three_plugins, broken)
    assert _statuses(host)["models"] is PluginStatus.QUARANTINED
    assert _attention_names(host) == ["in-tree", "alpha-backend", "beta-backend"]


def test_misspelled_hook_is_quarantined_by_check_pending(build_host, three_plugins, fakes):
    typo = fakes.entry_point(
        "typo",
        fakes.plugin(
            tenon_attention_backends=[fakes.attention_spec("typo-backend")],
            tenon_modles=[],
        ),
        distribution="tenon-typo",
    )
    host = build_host(*three_plugins, typo)
    record = next(r for r in host.plugins if r.name == "typo")
    assert record.status is PluginStatus.QUARANTINED
    assert record.phase == "hook validation"
    assert record.error_type == "PluginValidationError"
    assert "unknown hook 'tenon_modles'" in record.error_message
    # Unregistered: none of its hooks ran, so its valid backend is not in the registry.
    assert _attention_names(host) == ["in-tree", "alpha-backend", "beta-backend"]
    assert host.plugin_manager.get_plugin("typo") is None


def test_hookimpl_with_arguments_the_spec_lacks_is_quarantined_at_register(build_host, fakes):
    from tenon.spec import hookimpl

    class Plugin:
        @hookimpl
        def tenon_models(self, engine_config):
            return []

    entry_point = fakes.entry_point("bad-args", Plugin(), distribution="tenon-bad")
    host = build_host(entry_point)
    (record,) = host.plugins
    assert record.status is PluginStatus.QUARANTINED
    assert record.phase == "register"
    assert record.error_type == "PluginValidationError"
    assert "engine_config" in record.error_message
    assert host.plugin_manager.get_plugins() == set()


def test_same_entry_point_name_in_two_distributions(build_host, fakes):
    first = fakes.entry_point(
        "shared",
        fakes.plugin(tenon_attention_backends=[fakes.attention_spec("first")]),
        distribution="tenon-aaa",
    )
    second = fakes.entry_point(
        "shared",
        fakes.plugin(tenon_attention_backends=[fakes.attention_spec("second")]),
        distribution="tenon-bbb",
    )
    host = build_host(second, first)  # third-party order is by distribution, not given order
    assert [(r.origin.distribution, r.status) for r in host.plugins] == [
        ("tenon-aaa", PluginStatus.LOADED),
        ("tenon-bbb", PluginStatus.QUARANTINED),
    ]
    assert host.plugins[1].phase == "register"
    assert _attention_names(host) == ["first"]


def test_installed_entry_points_include_the_cpu_platform():
    # Other built-in plugins are written in parallel: assert only what this task provides.
    host = load_plugins(environ={})
    installed = {
        (ep.name, ep.dist.name if ep.dist else None)
        for ep in importlib.metadata.entry_points(group="tenon.plugins")
    }
    assert ("cpu-platform", "tenon") in installed
    record = next(r for r in host.plugins if r.name == "cpu-platform")
    assert (record.origin.distribution, record.is_builtin, record.status) == (
        "tenon",
        True,
        PluginStatus.LOADED,
    )
    (cpu,) = [e for e in host.specs(PluginKind.PLATFORM) if e.spec.name == "cpu"]
    assert cpu.origin.plugin == "cpu-platform"
    assert cpu.spec.target == "tenon.plugins.platforms.cpu:CpuPlatform"
