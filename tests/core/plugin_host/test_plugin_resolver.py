"""The resolver and loader: exact reasons for every verdict, ordering, probes, lazy imports,
fallback when a chosen target fails to import, and the selection error."""

from __future__ import annotations

import sys

import pytest

from tenon.plugin_host import PluginSelectionError
from tenon.spec import PluginKind, Requirements

ATTENTION = PluginKind.ATTENTION_BACKEND


def _verdicts(decision):
    return [(v.name, v.accepted, v.taken, v.reasons) for v in decision.candidates]


@pytest.fixture
def attention_host(build_host, fakes):
    """Backends: "flash" (priority 10, head sizes 64/128), "reference" (0, any), "tiny" (0, 32)."""

    def build(*, extra=()):
        plugin = fakes.plugin(
            tenon_attention_backends=[
                fakes.attention_spec("reference"),
                fakes.attention_spec("flash", priority=10, head_sizes=(64, 128)),
                fakes.attention_spec("tiny", head_sizes=(32,)),
                *extra,
            ]
        )
        return build_host(fakes.entry_point("backends", plugin, distribution="tenon"))

    return build


def test_capability_mismatch_and_priority(attention_host):
    host = attention_host()
    decision = host.resolve(ATTENTION, Requirements(head_size=72))
    assert decision.chosen.name == "reference"
    assert _verdicts(decision) == [
        ("reference", True, True, ("taken: only eligible candidate (priority 0)",)),
        ("flash", False, False, ("rejected: head size 72 not supported (supports: 64, 128)",)),
        ("tiny", False, False, ("rejected: head size 72 not supported (supports: 32)",)),
    ]


def test_highest_priority_wins_among_eligible(attention_host):
    decision = attention_host().resolve(ATTENTION, Requirements(head_size=64))
    assert decision.chosen.name == "flash"
    assert _verdicts(decision) == [
        ("flash", True, True, ("taken: highest priority (10) among 2 eligible",)),
        ("reference", True, False, ("eligible, lower priority (0)",)),
        ("tiny", False, False, ("rejected: head size 64 not supported (supports: 32)",)),
    ]


def test_equal_priority_is_broken_by_name(attention_host):
    decision = attention_host().resolve(ATTENTION, Requirements(head_size=32))
    assert _verdicts(decision) == [
        ("reference", True, True, ("taken: highest priority (0) among 2 eligible, first by name",)),
        ("tiny", True, False, ("eligible, same priority (0), later by name",)),
        ("flash", False, False, ("rejected: head size 32 not supported (supports: 64, 128)",)),
    ]


def test_every_unmet_requirement_is_a_reason(attention_host):
    decision = attention_host().resolve(
        ATTENTION, Requirements(head_size=72, needs_batch_invariance=True)
    )
    assert decision.chosen is None
    assert _verdicts(decision)[0] == (
        "reference",
        False,
        False,
        ("rejected: does not support batch invariance",),
    )
    assert _verdicts(decision)[1][3] == (
        "rejected: head size 72 not supported (supports: 64, 128)",
        "rejected: does not support batch invariance",
    )


def test_requested_name_overrides_priority(attention_host):
    decision = attention_host().resolve(
        ATTENTION, Requirements(head_size=64), requested="reference"
    )
    assert _verdicts(decision) == [
        ("reference", True, True, ("taken: requested (--attention-backend=reference)",)),
        ("flash", False, False, ("rejected: not requested (--attention-backend=reference)",)),
        (
            "tiny",
            False,
            False,
            (
                "rejected: not requested (--attention-backend=reference)",
                "rejected: head size 64 not supported (supports: 32)",
            ),
        ),
    ]


def test_kinds_without_a_flag_name_the_request(build_host, fakes):
    plugin = fakes.plugin(tenon_models=[fakes.model_spec("llama", "LlamaForCausalLM")])
    host = build_host(fakes.entry_point("models", plugin))
    decision = host.resolve(PluginKind.MODEL, Requirements(), requested="qwen")
    assert _verdicts(decision) == [
        ("llama", False, False, ("rejected: not requested ('qwen' was requested)",))
    ]


def test_preferred_names_come_before_priority(attention_host):
    decision = attention_host().resolve(
        ATTENTION, Requirements(head_size=32), preferred=("tiny", "reference")
    )
    assert decision.preferred == ("tiny", "reference")
    assert _verdicts(decision) == [
        ("tiny", True, True, ("taken: preferred (tiny, reference)",)),
        ("reference", True, False, ("eligible, later in preferred order (tiny, reference)",)),
        ("flash", False, False, ("rejected: head size 32 not supported (supports: 64, 128)",)),
    ]
    decision = attention_host().resolve(
        ATTENTION, Requirements(head_size=64), preferred=("reference",)
    )
    assert _verdicts(decision)[:2] == [
        ("reference", True, True, ("taken: preferred (reference)",)),
        ("flash", True, False, ("eligible, not preferred (reference)",)),
    ]


def test_quarantined_specs_are_listed_as_rejected_candidates(attention_host, fakes):
    host = attention_host(extra=[fakes.attention_spec("future", api_version="9.0")])
    decision = host.resolve(ATTENTION, Requirements(head_size=32))
    assert _verdicts(decision)[-1] == (
        "future",
        False,
        False,
        (
            "rejected: quarantined: written for tenon.spec API 9.0, but this Tenon provides "
            "API 1.0 and loads plugins for API >=1.0,<=1.0",
        ),
    )


def test_platform_probes_reject_and_run_once(build_host, fakes, write_module):
    probes = write_module(
        """
        calls = []

        def absent():
            calls.append("absent")
            return False

        def broken():
            calls.append("broken")
            raise RuntimeError("driver not loaded")

        def present():
            calls.append("present")
            return True
        """
    )
    plugin = fakes.plugin(
        tenon_platforms=[
            fakes.platform_spec("npu", f"{probes}:absent", priority=20),
            fakes.platform_spec("gpu", f"{probes}:broken", priority=10),
            fakes.platform_spec("cpu", f"{probes}:present"),
            fakes.platform_spec("tpu", f"{probes}:never_called", priority=30),
        ]
    )
    host = build_host(fakes.entry_point("platforms", plugin))
    first = host.resolve(PluginKind.PLATFORM, Requirements(dtype="float64"))
    # Static checks fail for every platform here, so no probe is imported or run.
    assert probes not in sys.modules
    decision = host.resolve(PluginKind.PLATFORM, Requirements(device_type="tpu"))
    assert decision.chosen is None
    decision = host.resolve(PluginKind.PLATFORM, Requirements())
    host.resolve(PluginKind.PLATFORM, Requirements())
    assert first.chosen is None
    assert sys.modules[probes].calls == ["absent", "broken", "present"]  # cached per host
    assert _verdicts(decision) == [
        ("cpu", True, True, ("taken: only eligible candidate (priority 0)",)),
        (
            "npu",
            False,
            False,
            (f"rejected: probe {probes}:absent returned False (platform not usable here)",),
        ),
        (
            "gpu",
            False,
            False,
            (f"rejected: probe {probes}:broken failed: RuntimeError: driver not loaded",),
        ),
        (
            "tpu",
            False,
            False,
            (
                f"rejected: probe {probes}:never_called failed: AttributeError: module "
                f"'{probes}' has no attribute 'never_called'",
            ),
        ),
    ]


@pytest.fixture
def target_modules(write_module):
    """A module that counts its imports and one whose import raises."""
    working = write_module(
        """
        class Backend:
            pass
        """
    )
    exploding = write_module(
        """
        raise RuntimeError("kernels not built")
        """
    )
    return working, exploding


def test_only_the_selected_target_is_imported(attention_host, fakes, target_modules):
    working, exploding = target_modules
    host = attention_host(
        extra=[
            fakes.attention_spec("fast", priority=50, target=f"{working}:Backend"),
            fakes.attention_spec("faster", priority=60, head_sizes=(8,), target=f"{exploding}:X"),
        ]
    )
    decision = host.resolve(ATTENTION, Requirements(head_size=64))
    assert decision.chosen.name == "fast"
    assert working not in sys.modules and exploding not in sys.modules  # resolving imports nothing
    loaded, decision = host.select(ATTENTION, Requirements(head_size=64))
    assert loaded is sys.modules[working].Backend
    assert exploding not in sys.modules
    assert host.load(decision) is loaded


def test_failed_import_falls_back_to_the_next_candidate(attention_host, fakes, target_modules):
    working, exploding = target_modules
    host = attention_host(
        extra=[
            fakes.attention_spec("fast", priority=50, target=f"{working}:Backend"),
            fakes.attention_spec("faster", priority=60, target=f"{exploding}:Backend"),
        ]
    )
    loaded, decision = host.select(ATTENTION, Requirements(head_size=64))
    assert loaded is sys.modules[working].Backend
    reason = f"failed to import {exploding}:Backend: RuntimeError: kernels not built"
    assert decision.chosen.name == "fast"
    assert _verdicts(decision)[0] == (
        "fast",
        True,
        True,
        ("taken: highest priority (50) among 3 eligible",),
    )
    assert _verdicts(decision)[-1] == (
        "faster",
        False,
        False,
        (f"rejected: quarantined: {reason}",),
    )
    assert [d.chosen.name for d in host.decisions] == ["faster", "fast"]
    assert [(q.name, q.reason) for q in host.quarantined_specs] == [("faster", reason)]
    # The quarantine sticks: the next resolution in this host does not try it again.
    assert host.resolve(ATTENTION, Requirements(head_size=64)).chosen.name == "fast"


def test_missing_attribute_in_target_also_falls_back(attention_host, fakes, target_modules):
    working, _ = target_modules
    host = attention_host(
        extra=[
            fakes.attention_spec("typo", priority=50, target=f"{working}:Backnd"),
            fakes.attention_spec("fast", priority=40, target=f"{working}:Backend"),
        ]
    )
    _, decision = host.select(ATTENTION, Requirements(head_size=64))
    assert decision.chosen.name == "fast"
    assert host.quarantined_specs[0].reason == (
        f"failed to import {working}:Backnd: AttributeError: module '{working}' has no "
        "attribute 'Backnd'"
    )


def test_requested_target_that_fails_to_import_is_an_error(
    attention_host, fakes, target_modules, build_host
):
    _, exploding = target_modules
    host = attention_host(
        extra=[fakes.attention_spec("faster", priority=60, target=f"{exploding}:Backend")]
    )
    with pytest.raises(PluginSelectionError) as raised:
        host.select(ATTENTION, Requirements(head_size=64), requested="faster")
    assert str(raised.value) == "\n".join(
        [
            "the requested attention backend 'faster' cannot be used (--attention-backend=faster)",
            "attention backend candidates:",
            "  reference from plugin backends (tenon 1.0): "
            "rejected: not requested (--attention-backend=faster)",
            "  flash from plugin backends (tenon 1.0): "
            "rejected: not requested (--attention-backend=faster)",
            "  tiny from plugin backends (tenon 1.0): "
            "rejected: not requested (--attention-backend=faster); "
            "rejected: head size 64 not supported (supports: 32)",
            "  faster from plugin backends (tenon 1.0): rejected: quarantined: "
            f"failed to import {exploding}:Backend: RuntimeError: kernels not built",
            "run `tenon doctor` for details",
        ]
    )
    assert raised.value.decision is host.decisions[-1]


def test_nothing_fits_lists_candidates_and_quarantined_plugins(attention_host, build_host, fakes):
    plugin = fakes.plugin(
        tenon_attention_backends=[fakes.attention_spec("flash", priority=10, head_sizes=(64,))]
    )
    host = build_host(
        fakes.entry_point("backends", plugin, distribution="tenon", version="0.1.0"),
        fakes.entry_point(
            "vendor", distribution="tenon-vendor", version="2.0", error=ImportError("no libfoo")
        ),
    )
    with pytest.raises(PluginSelectionError) as raised:
        host.select(ATTENTION, Requirements(head_size=80))
    assert str(raised.value) == "\n".join(
        [
            "no attention backend can serve this configuration",
            "attention backend candidates:",
            "  flash from plugin backends (tenon 0.1.0): "
            "rejected: head size 80 not supported (supports: 64)",
            "quarantined plugins (one of them may have provided it):",
            "  plugin vendor (tenon-vendor 2.0): ImportError: no libfoo",
            "run `tenon doctor` for details",
        ]
    )


def test_unknown_requested_name(attention_host):
    host = attention_host()
    decision = host.resolve(ATTENTION, Requirements(), requested="xyz")
    with pytest.raises(PluginSelectionError) as raised:
        host.load(decision)
    message = str(raised.value)
    assert message.splitlines()[0] == (
        "no attention backend named 'xyz' is registered (--attention-backend=xyz)"
    )
    assert message.endswith("run `tenon doctor` for details")


def test_empty_slot(build_host):
    host = build_host()
    with pytest.raises(PluginSelectionError) as raised:
        host.select(PluginKind.KV_TIER, Requirements(kv_medium="disk"))
    assert str(raised.value) == "\n".join(
        [
            "no kv tier can serve this configuration",
            "kv tier candidates:",
            "  (none registered)",
            "run `tenon doctor` for details",
        ]
    )


def test_each_host_keeps_its_own_decisions(attention_host):
    first, second = attention_host(), attention_host()
    first.resolve(ATTENTION, Requirements(head_size=64))
    first.resolve(ATTENTION, Requirements(head_size=32), requested="tiny")
    assert [(d.chosen.name, d.requested) for d in first.decisions] == [
        ("flash", None),
        ("tiny", "tiny"),
    ]
    assert second.decisions == ()
