"""The registry: per-kind specs with their origin, and what gets quarantined and why."""

from __future__ import annotations

import pytest

from tenon.plugin_host import Origin, PluginStatus
from tenon.spec import (
    API_VERSION,
    AttentionBackendSpec,
    ModelCapabilities,
    PluginKind,
    supported_range,
)

GOOD_ORIGIN = Origin(plugin="good", distribution="tenon-good", version="1.0")


def _quarantined(host):
    return [(q.kind, q.name, q.origin.plugin, q.reason) for q in host.quarantined_specs]


@pytest.fixture
def good(fakes):
    return fakes.entry_point(
        "good",
        fakes.plugin(
            tenon_models=[fakes.model_spec("llama", "LlamaForCausalLM")],
            tenon_attention_backends=(fakes.attention_spec("reference"),),
        ),
        distribution="tenon-good",
    )


def test_specs_are_collected_per_kind_with_their_origin(build_host, good):
    host = build_host(good)
    (model,) = host.specs(PluginKind.MODEL)
    (attention,) = host.specs(PluginKind.ATTENTION_BACKEND)
    assert (model.spec.name, model.origin) == ("llama", GOOD_ORIGIN)
    assert (attention.spec.name, attention.origin) == ("reference", GOOD_ORIGIN)
    assert host.specs(PluginKind.PLATFORM) == ()
    assert host.quarantined_specs == ()


def test_hook_that_raises_quarantines_the_plugin_and_drops_all_its_specs(build_host, fakes, good):
    def explode():
        raise KeyError("missing config key")

    flaky = fakes.entry_point(
        "flaky",
        fakes.plugin(
            # Platforms are collected before models: this spec was returned, then dropped.
            tenon_platforms=[fakes.platform_spec("npu", "fake_module:probe")],
            tenon_models=explode,
        ),
        distribution="tenon-flaky",
    )
    host = build_host(good, flaky)
    record = next(r for r in host.plugins if r.name == "flaky")
    assert record.status is PluginStatus.QUARANTINED
    assert record.phase == "tenon_models()"
    assert record.error == "KeyError: 'missing config key'"
    assert host.specs(PluginKind.PLATFORM) == ()
    assert [e.spec.name for e in host.specs(PluginKind.MODEL)] == ["llama"]
    assert host.plugin_manager.get_plugin("flaky") is None


def test_unsupported_api_version_quarantines_that_spec_only(build_host, fakes, good):
    future = fakes.entry_point(
        "future",
        fakes.plugin(
            tenon_attention_backends=[
                fakes.attention_spec("from-the-future", api_version="9.0"),
                fakes.attention_spec("current"),
            ]
        ),
        distribution="tenon-future",
    )
    host = build_host(good, future)
    reason = (
        f"written for tenon.spec API 9.0, but this Tenon provides API {API_VERSION} "
        f"and loads plugins for API {supported_range()}"
    )
    assert _quarantined(host) == [
        (PluginKind.ATTENTION_BACKEND, "from-the-future", "future", reason)
    ]
    # Third-party plugins register in distribution-name order: tenon-future, then tenon-good.
    assert [e.spec.name for e in host.specs(PluginKind.ATTENTION_BACKEND)] == [
        "current",
        "reference",
    ]
    assert next(r for r in host.plugins if r.name == "future").status is PluginStatus.LOADED


def test_malformed_api_version_is_quarantined_with_the_expected_form(build_host, fakes):
    odd = fakes.entry_point(
        "odd", fakes.plugin(tenon_models=[fakes.model_spec("m", "M", api_version="one")])
    )
    host = build_host(odd)
    assert _quarantined(host) == [
        (PluginKind.MODEL, "m", "odd", "api_version must look like 'MAJOR.MINOR', got 'one'")
    ]


def test_objects_of_the_wrong_type_are_quarantined(build_host, fakes):
    attention = fakes.attention_spec("misfiled")
    confused = fakes.entry_point(
        "confused",
        fakes.plugin(
            tenon_models=[{"name": "dict-model"}, attention],
            tenon_attention_backends=fakes.attention_spec("single"),
            tenon_kv_tiers=None,  # returning None registers nothing, and is no error
        ),
    )
    host = build_host(confused)
    assert _quarantined(host) == [
        (
            PluginKind.MODEL,
            "<dict>",
            "confused",
            "tenon_models() returned dict, expected ModelSpec",
        ),
        (
            PluginKind.MODEL,
            "misfiled",
            "confused",
            "tenon_models() returned AttentionBackendSpec, expected ModelSpec",
        ),
        (
            PluginKind.ATTENTION_BACKEND,
            "single",
            "confused",
            "tenon_attention_backends() must return a list or tuple of AttentionBackendSpec, "
            "got AttentionBackendSpec",
        ),
    ]
    assert host.quarantined_specs[1].spec is attention
    assert host.quarantined_specs[0].spec is None
    assert all(host.specs(kind) == () for kind in PluginKind)


def test_capabilities_of_the_wrong_kind_are_quarantined(build_host, fakes):
    spec = AttentionBackendSpec(
        name="wrong-capabilities",
        target="fake_module:Backend",
        api_version=API_VERSION,
        capabilities=ModelCapabilities(architectures=("X",)),
    )
    host = build_host(fakes.entry_point("p", fakes.plugin(tenon_attention_backends=[spec])))
    assert _quarantined(host) == [
        (
            PluginKind.ATTENTION_BACKEND,
            "wrong-capabilities",
            "p",
            "capabilities must be AttentionCapabilities, got ModelCapabilities",
        )
    ]


def test_duplicate_name_quarantines_the_later_one_naming_both_plugins(build_host, fakes, good):
    copycat = fakes.entry_point(
        "copycat",
        fakes.plugin(
            tenon_attention_backends=[fakes.attention_spec("reference", priority=100)],
            # The same name in another kind is no conflict.
            tenon_quant_schemes=[],
            tenon_models=[fakes.model_spec("reference", "RefForCausalLM")],
        ),
        distribution="tenon-later",  # registers after tenon-good (distribution-name order)
        version="3.1",
    )
    host = build_host(good, copycat)
    assert _quarantined(host) == [
        (
            PluginKind.ATTENTION_BACKEND,
            "reference",
            "copycat",
            "name conflict: attention backend 'reference' from plugin copycat "
            "(tenon-later 3.1) is already registered by plugin good (tenon-good 1.0); "
            "the later registration is ignored",
        )
    ]
    (attention,) = host.specs(PluginKind.ATTENTION_BACKEND)
    assert (attention.origin.plugin, attention.spec.priority) == ("good", 0)
    assert [e.spec.name for e in host.specs(PluginKind.MODEL)] == ["llama", "reference"]


def test_a_third_party_cannot_take_a_built_in_name(build_host, fakes):
    # The third party is listed first, but built-ins are always registered first.
    squatter = fakes.entry_point(
        "aaa", fakes.plugin(tenon_models=[fakes.model_spec("llama", "X")]), distribution="aaa"
    )
    builtin = fakes.entry_point(
        "models",
        fakes.plugin(tenon_models=[fakes.model_spec("llama", "LlamaForCausalLM")]),
        distribution="tenon",
    )
    host = build_host(squatter, builtin)
    (entry,) = host.specs(PluginKind.MODEL)
    assert entry.origin.distribution == "tenon"
    assert [q.origin.plugin for q in host.quarantined_specs] == ["aaa"]
