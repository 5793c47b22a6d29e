"""The kit run against the example packages in tests/thirdparty/, installed with pip, and the
engine using each once installed: selected by name or winning on priority, reason printed.

Install them first (the Makefile does):
    pip install --no-deps --no-build-isolation tests/thirdparty/<package>
"""

from __future__ import annotations

import importlib
import json
import types
from pathlib import Path

import pytest
import transformers

from tenon.cli.main import main
from tenon.testing import (
    AttentionBackendConformance,
    ModelArchitectureConformance,
    PlatformConformance,
)
from tenon.testing.hf_reference import TINY_CONFIG, make_hf_model, save_model_dir


def _installed(module: str) -> types.ModuleType | None:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _skip_unless(module: types.ModuleType | None, package: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        module is None,
        reason=f"{package} is not installed: pip install --no-deps --no-build-isolation "
        f"tests/thirdparty/{package}",
    )


good_plugin = _installed("tenon_example_good.plugin")
good_sdpa = _installed("tenon_example_good.sdpa")
neox_plugin = _installed("tenon_example_gpt_neox.plugin")
neox_model = _installed("tenon_example_gpt_neox.model")
platform_plugin = _installed("tenon_example_platform.plugin")
platform_module = _installed("tenon_example_platform.platform")
needs_good = _skip_unless(good_sdpa, "tenon-example-good")
needs_neox = _skip_unless(neox_model, "tenon-example-gpt-neox")
needs_platform = _skip_unless(platform_module, "tenon-example-platform")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TENON_PLUGINS", "TENON_DISABLE_PLUGIN_AUTOLOAD"):
        monkeypatch.delenv(name, raising=False)


@needs_good
class TestExampleSdpa(AttentionBackendConformance):
    backend_class = getattr(good_sdpa, "SdpaAttentionBackend", None)
    # The spec is what the plugin returns from its hook.
    spec = good_plugin.tenon_attention_backends()[0] if good_plugin else None


@needs_neox
class TestExampleGPTNeoX(ModelArchitectureConformance):
    architecture_class = getattr(neox_model, "GPTNeoXForCausalLM", None)
    hf_model_class = transformers.GPTNeoXForCausalLM
    # Half of each head rotated, so the pass-through half is tested too.
    hf_config_overrides = {"rotary_pct": 0.5}
    spec = getattr(neox_plugin, "SPEC", None)


@needs_neox
class TestExampleGPTNeoXSequentialResidual(TestExampleGPTNeoX):
    hf_config_overrides = {"rotary_pct": 0.25, "use_parallel_residual": False}
    prompt_lens = (3, 11)

    # The engine-level checks ran on the parallel-residual model above.
    test_engine_batched_and_alone_match_reference = None  # type: ignore[assignment]
    test_engine_chunked_prefill_and_prefix_cache = None  # type: ignore[assignment]


@needs_platform
class TestExamplePlatform(PlatformConformance):
    platform_class = getattr(platform_module, "ReproducibleCpuPlatform", None)
    spec = getattr(platform_plugin, "SPEC", None)


# --- Installed with pip and nothing else: doctor lists them, the engine uses them -------------


def test_doctor_json_lists_every_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    plugins = {p["name"]: (p["distribution"], p["version"], p["status"]) for p in report["plugins"]}
    expected = {
        "example-good": ("tenon-example-good", "0.3.1", "loaded"),
        "example-gpt-neox": ("tenon-example-gpt-neox", "0.1.0", "loaded"),
        "example-platform": ("tenon-example-platform", "0.1.0", "loaded"),
        "example-broken-import": ("tenon-example-broken-import", "0.2.0", "quarantined"),
    }
    for name, row in expected.items():
        if row[0] not in {p["distribution"] for p in report["plugins"]}:
            pytest.skip(f"{row[0]} is not installed")
        assert plugins[name] == row
    specs = {kind: [s["name"] for s in entries] for kind, entries in report["specs"].items()}
    assert "example-sdpa" in specs["attention_backend"]
    assert "example-gpt-neox" in specs["model"]
    assert "example-cpu" in specs["platform"]


@pytest.fixture(scope="module")
def tiny_neox_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = transformers.GPTNeoXConfig(**TINY_CONFIG)
    model = make_hf_model(transformers.GPTNeoXForCausalLM, config)
    return save_model_dir(model, tmp_path_factory.mktemp("tiny-gpt-neox"))


def _startup_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("tenon: ")]


@needs_good
@needs_neox
@needs_platform
def test_engine_uses_each_example_and_prints_why(
    tiny_neox_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tenon import LLM, SamplingParams

    capsys.readouterr()
    llm = LLM(str(tiny_neox_dir), dtype="float32", attention_backend="example-sdpa")
    lines = _startup_lines(capsys)
    # The only implementation of GPTNeoXForCausalLM wins; the backend was asked for by name.
    assert "tenon: model: example-gpt-neox (taken: only eligible candidate (priority 0))" in lines
    assert (
        "tenon: attention backend: example-sdpa (taken: requested "
        "(--attention-backend=example-sdpa))" in lines
    )
    params = SamplingParams(temperature=0.0, max_tokens=6, ignore_eos=True)
    by_name = llm.generate({"prompt_token_ids": [5, 17, 42, 9]}, params)[0].outputs[0].token_ids
    llm.shutdown()

    llm = LLM(str(tiny_neox_dir), device="example-cpu")
    lines = _startup_lines(capsys)
    assert "tenon: platform: example-cpu (taken: requested ('example-cpu' was requested))" in lines
    # The platform's preference decides the backend, and "auto" means float32 there.
    assert "tenon: attention backend: reference (taken: preferred (reference))" in lines
    assert llm.config.model.dtype == "float32"
    on_platform = llm.generate({"prompt_token_ids": [5, 17, 42, 9]}, params)[0].outputs[0].token_ids
    llm.shutdown()
    assert by_name == on_platform and len(set(by_name)) > 1
