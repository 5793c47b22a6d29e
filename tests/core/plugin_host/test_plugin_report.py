"""The host's report: JSON-ready, and exactly what discovery, registry and resolver recorded."""

from __future__ import annotations

import json

from tenon.spec import API_VERSION, PluginKind, Requirements, hookimpl, supported_range


def test_report_is_json_ready_and_complete(build_host, fakes):
    host = build_host(
        fakes.entry_point(
            "backends",
            fakes.plugin(
                tenon_attention_backends=[
                    fakes.attention_spec("flash", priority=10, head_sizes=(64, 128)),
                    fakes.attention_spec("future", api_version="9.0"),
                ]
            ),
            distribution="tenon",
            version="0.1.0",
        ),
        fakes.entry_point("broken", distribution="tenon-broken", error=ImportError("no libfoo")),
        fakes.entry_point("skipped", fakes.plugin(), distribution="tenon-skipped"),
        environ={"TENON_PLUGINS": "broken,missing"},
    )
    host.resolve(PluginKind.ATTENTION_BACKEND, Requirements(head_size=72))
    report = host.report()
    assert json.loads(json.dumps(report)) == report

    assert report["api_version"] == API_VERSION
    assert report["supported_api_versions"] == supported_range()
    assert report["settings"] == {"autoload": True, "allowlist": ["broken", "missing"]}
    assert report["errors"] == [
        "TENON_PLUGINS names missing, which no installed plugin provides; available plugin "
        "names: backends, broken, skipped. Fix the spelling or install the plugin's package."
    ]
    loaded, broken, skipped = report["plugins"]
    assert loaded == {
        "name": "backends",
        "distribution": "tenon",
        "version": "0.1.0",
        "value": None,
        "builtin": True,
        "status": "loaded",
        "phase": None,
        "error": None,
        "error_type": None,
        "error_message": None,
        "traceback": None,
    }
    assert (broken["status"], broken["phase"], broken["error"]) == (
        "quarantined",
        "import",
        "ImportError: no libfoo",
    )
    assert broken["traceback"].strip().endswith("ImportError: no libfoo")
    assert (skipped["status"], skipped["error"]) == ("skipped-by-allowlist", None)

    assert sorted(report["specs"]) == sorted(kind.name.lower() for kind in PluginKind)
    assert report["specs"]["attention_backend"] == [
        {
            "name": "flash",
            "target": "fake_module:Backend",
            "api_version": API_VERSION,
            "priority": 10,
            "description": "",
            "capabilities": {
                "device_types": None,
                "dtypes": None,
                "head_sizes": [64, 128],
                "block_sizes": None,
                "supports_graphs": False,
                "batch_invariant": False,
                "supports_sliding_window": False,
            },
            "plugin": "backends",
            "distribution": "tenon",
            "version": "0.1.0",
        }
    ]
    (quarantined,) = report["quarantined_specs"]
    assert {k: v for k, v in quarantined.items() if k != "spec"} == {
        "kind": "attention_backend",
        "name": "future",
        "plugin": "backends",
        "distribution": "tenon",
        "version": "0.1.0",
        "reason": (
            f"written for tenon.spec API 9.0, but this Tenon provides API {API_VERSION} and "
            f"loads plugins for API {supported_range()}"
        ),
    }
    assert quarantined["spec"]["api_version"] == "9.0"

    (decision,) = report["decisions"]
    assert decision["kind"] == "attention_backend"
    assert (decision["chosen"], decision["chosen_plugin"], decision["requested"]) == (
        None,
        None,
        None,
    )
    assert decision["problem"] == "no attention backend can serve this configuration"
    assert decision["requirements"]["head_size"] == 72
    assert decision["candidates"] == [
        {
            "name": "flash",
            "plugin": "backends",
            "distribution": "tenon",
            "version": "0.1.0",
            "accepted": False,
            "taken": False,
            "reasons": ["rejected: head size 72 not supported (supports: 64, 128)"],
        },
        {
            "name": "future",
            "plugin": "backends",
            "distribution": "tenon",
            "version": "0.1.0",
            "accepted": False,
            "taken": False,
            "reasons": [f"rejected: quarantined: {quarantined['reason']}"],
        },
    ]


def test_configure_hook_reaches_loaded_plugins_only(build_host, fakes):
    seen = []

    class Plugin:
        def __init__(self, name):
            self.name = name

        @hookimpl
        def tenon_configure(self, config):
            seen.append((self.name, config["max_model_len"]))

    host = build_host(
        fakes.entry_point("first", Plugin("first"), distribution="tenon"),
        fakes.entry_point("second", Plugin("second"), distribution="tenon-x"),
        environ={"TENON_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    host.configure({"max_model_len": 2048})
    assert seen == [("first", 2048)]
