"""`tenon doctor`: model facts from config.json, the slot decisions, and the output."""

from __future__ import annotations

import json
import sys
import textwrap
import types

import pytest

from tenon.cli.doctor import DoctorOptions, doctor_report, resolve_slots
from tenon.cli.doctor_text import render_text
from tenon.cli.main import main
from tenon.cli.model_facts import ModelFacts, read_model_facts
from tenon.cli.table import format_table
from tenon.plugin_host import StaticEntryPoint, load_plugins
from tenon.spec import (
    API_VERSION,
    AttentionBackendSpec,
    AttentionCapabilities,
    LoaderCapabilities,
    ModelCapabilities,
    ModelLoaderSpec,
    ModelSpec,
    PlatformCapabilities,
    PlatformSpec,
    QuantCapabilities,
    QuantSchemeSpec,
    hookimpl,
)

LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 576,
    "num_attention_heads": 9,
    "torch_dtype": "bfloat16",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in ("TENON_PLUGINS", "TENON_DISABLE_PLUGIN_AUTOLOAD"):
        monkeypatch.delenv(name, raising=False)


def _model_dir(tmp_path, config, *weight_files):
    tmp_path.mkdir(parents=True, exist_ok=True)
    tmp_path.joinpath("config.json").write_text(json.dumps(config))
    for name in weight_files:
        tmp_path.joinpath(name).write_bytes(b"")
    return tmp_path


def test_facts_from_a_model_directory(tmp_path):
    model_dir = _model_dir(tmp_path, LLAMA_CONFIG, "model.safetensors", "tokenizer.json")
    assert read_model_facts(model_dir) == ModelFacts(
        model_dir=str(model_dir),
        config_path=str(model_dir / "config.json"),
        architecture="LlamaForCausalLM",
        head_size=64,
        dtype="bfloat16",
        quantization=None,
        sliding_window=False,
        load_format="safetensors",
    )


def test_facts_from_a_config_path(tmp_path):
    config = {
        "architectures": ["Qwen2ForCausalLM", "Other"],
        "head_dim": 128,
        "hidden_size": 1000,
        "num_attention_heads": 10,
        "dtype": "torch.float16",  # transformers 5 writes "dtype"
        "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]},
        "sliding_window": 4096,
        "use_sliding_window": False,
    }
    model_dir = _model_dir(tmp_path, config, "model-q8_0.gguf")
    facts = read_model_facts(model_dir / "config.json")
    assert (facts.architecture, facts.head_size, facts.dtype, facts.quantization) == (
        "Qwen2ForCausalLM",
        128,
        "float16",
        "fp8",
    )
    assert (facts.sliding_window, facts.load_format) == (False, "gguf")


def test_facts_from_a_nested_text_config_with_sharded_weights(tmp_path):
    config = {
        "architectures": ["MistralForCausalLM"],
        "text_config": {"hidden_size": 96, "num_attention_heads": 3, "sliding_window": 32},
    }
    model_dir = _model_dir(tmp_path, config, "model.safetensors.index.json")
    facts = read_model_facts(model_dir)
    assert (facts.head_size, facts.dtype, facts.sliding_window, facts.load_format) == (
        32,
        None,
        True,
        "safetensors",
    )


def test_no_weights_means_no_loader(tmp_path):
    assert read_model_facts(_model_dir(tmp_path, LLAMA_CONFIG)).load_format is None


def test_bad_model_paths_say_what_to_pass(tmp_path):
    with pytest.raises(ValueError, match="does not exist; `tenon doctor` reads a local model"):
        read_model_facts(tmp_path / "missing")
    with pytest.raises(ValueError, match="has no config.json; pass the model directory"):
        read_model_facts(tmp_path)
    tmp_path.joinpath("config.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read .*config.json as JSON"):
        read_model_facts(tmp_path)


def test_format_table_aligns_columns():
    assert format_table(
        ["NAME", "STATUS", "ERROR"], [["a", "loaded", ""], ["long-name", "x", "e"]]
    ) == [
        "  NAME       STATUS  ERROR",
        "  a          loaded",
        "  long-name  x       e",
    ]
    assert format_table(["A"], []) == ["  (none)"]


def _plugin(**hooks):
    plugin = types.ModuleType("doctor_test_plugin")
    for name, specs in hooks.items():
        setattr(plugin, name, hookimpl(_returning(specs)))
    return plugin


def _returning(specs):
    def implementation():
        return specs

    return implementation


@pytest.fixture
def fake_host(tmp_path, monkeypatch):
    """A platform that prefers the "paged" attention backend, and one spec per other slot."""
    tmp_path.joinpath("doctor_fake_platform.py").write_text(
        textwrap.dedent(
            """
            class FakePlatform:
                preferred_attention_backends = ("paged", "sdpa")

            def probe():
                return True
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    def attention(name, priority, head_sizes=None):
        return AttentionBackendSpec(
            name=name,
            target=f"fake:{name}",
            api_version=API_VERSION,
            priority=priority,
            capabilities=AttentionCapabilities(head_sizes=head_sizes),
        )

    plugin = _plugin(
        tenon_platforms=[
            PlatformSpec(
                name="fakecpu",
                target="doctor_fake_platform:FakePlatform",
                probe="doctor_fake_platform:probe",
                api_version=API_VERSION,
                capabilities=PlatformCapabilities(device_type="cpu"),
            )
        ],
        tenon_models=[
            ModelSpec(
                name="llama",
                target="fake:Llama",
                api_version=API_VERSION,
                capabilities=ModelCapabilities(architectures=("LlamaForCausalLM",)),
            )
        ],
        tenon_attention_backends=[
            attention("sdpa", 5),
            attention("paged", 0, head_sizes=(64,)),
            attention("fast", 50),
        ],
        tenon_quant_schemes=[
            QuantSchemeSpec(
                name="none",
                target="fake:NoQuant",
                api_version=API_VERSION,
                capabilities=QuantCapabilities(methods=("none",)),
            )
        ],
        tenon_model_loaders=[
            ModelLoaderSpec(
                name="safetensors",
                target="fake:Loader",
                api_version=API_VERSION,
                capabilities=LoaderCapabilities(formats=("safetensors",)),
            )
        ],
    )
    entry_point = StaticEntryPoint(
        name="builtins", loader=lambda: plugin, distribution="tenon", version="0.1.0"
    )
    yield load_plugins(environ={}, entry_points=[entry_point])
    sys.modules.pop("doctor_fake_platform", None)


def test_slots_for_a_model(fake_host, tmp_path):
    facts = read_model_facts(_model_dir(tmp_path / "model", LLAMA_CONFIG, "model.safetensors"))
    decisions = resolve_slots(fake_host, facts, DoctorOptions())
    assert [(d.kind.name, d.chosen.name) for d in decisions] == [
        ("PLATFORM", "fakecpu"),
        ("MODEL", "llama"),
        ("ATTENTION_BACKEND", "paged"),
        ("QUANT_SCHEME", "none"),
        ("MODEL_LOADER", "safetensors"),
    ]
    attention = decisions[2]
    assert attention.preferred == ("paged", "sdpa")
    assert (attention.requirements.device_type, attention.requirements.dtype) == ("cpu", "bfloat16")
    assert attention.requirements.head_size == 64
    assert [(v.name, v.reasons) for v in attention.candidates] == [
        ("paged", ("taken: preferred (paged, sdpa)",)),
        ("sdpa", ("eligible, later in preferred order (paged, sdpa)",)),
        ("fast", ("eligible, not preferred (paged, sdpa)",)),
    ]


def test_flags_override_the_model(fake_host, tmp_path):
    facts = read_model_facts(_model_dir(tmp_path / "model", LLAMA_CONFIG))
    decisions = resolve_slots(
        fake_host, facts, DoctorOptions(dtype="float32", device="cuda", attention_backend="fast")
    )
    platform, _, attention, _ = decisions  # no weights: no loader decision
    assert platform.chosen is None
    assert [v.reasons for v in platform.candidates] == [
        ("rejected: device type cuda not supported (supports: cpu)",)
    ]
    assert (attention.chosen.name, attention.requirements.device_type) == ("fast", "cuda")
    assert attention.requirements.dtype == "float32"
    assert attention.preferred == ()  # no platform was chosen to rank backends


def test_report_and_text_without_a_model(fake_host):
    report = doctor_report(fake_host, None, DoctorOptions())
    assert report["slots"] == [{"kind": "platform", "chosen": "fakecpu"}]
    assert report["model"] is None
    text = render_text(report)
    assert "  builtins  tenon         0.1.0    loaded" in text.splitlines()
    assert text.splitlines()[-3:] == [
        "  platform: fakecpu",
        "    CANDIDATE  PLUGIN    VERDICT",
        "    fakecpu    builtins  taken: only eligible candidate (priority 0)",
    ]


def test_doctor_command_with_a_model(tmp_path, capsys):
    model_dir = _model_dir(tmp_path, LLAMA_CONFIG, "model.safetensors")
    main(["doctor", str(model_dir), "--json", "--dtype", "half"])
    report = json.loads(capsys.readouterr().out)
    # Other built-in plugins are written in parallel: assert only the platform's decision.
    assert [slot["kind"] for slot in report["slots"]] == [
        "platform",
        "model",
        "attention_backend",
        "quant_scheme",
        "model_loader",
    ]
    import torch

    expected_platform = "cuda" if torch.cuda.is_available() else "cpu"
    assert report["slots"][0] == {"kind": "platform", "chosen": expected_platform}
    assert report["model"]["architecture"] == "LlamaForCausalLM"
    assert {d["requirements"]["dtype"] for d in report["decisions"][:4]} == {"float16"}


def test_doctor_command_plain_output(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Tenon plugin contract API {API_VERSION} ")
    assert "  platform: cpu\n" in out


def test_doctor_bad_path_exits_2(tmp_path, capsys):
    assert main(["doctor", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == (
        f"tenon doctor: error: {tmp_path / 'nope'} does not exist; `tenon doctor` reads a local "
        "model directory or its config.json (it never downloads)\n"
    )


def test_doctor_reports_unknown_tenon_variables(capsys, monkeypatch):
    monkeypatch.setenv("TENON_PLUGIN", "typo-of-TENON_PLUGINS")
    assert main(["doctor", "--json"]) == 1
    (error,) = json.loads(capsys.readouterr().out)["errors"]
    assert error.startswith("unknown environment variable(s) TENON_PLUGIN; Tenon reads only:")
