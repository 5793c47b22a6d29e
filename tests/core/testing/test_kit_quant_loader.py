"""The quantization and loader suites of the kit, run on the built-in "none" scheme and the
safetensors loader (proving the kit itself), and on deliberately broken ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from tenon.plugins.loaders.registration import tenon_model_loaders
from tenon.plugins.loaders.safetensors_loader import SafetensorsLoader
from tenon.plugins.quantization.none import NoQuantScheme, UnquantizedLinearMethod
from tenon.plugins.quantization.registration import tenon_quant_schemes
from tenon.spec.quantization import LinearMethod
from tenon.testing import ModelLoaderConformance, QuantSchemeConformance, run_conformance

[NONE_SPEC] = tenon_quant_schemes()
LOADER_SPECS = {spec.name: spec for spec in tenon_model_loaders()}


class TestNoQuantScheme(QuantSchemeConformance):
    scheme_class = NoQuantScheme
    spec = NONE_SPEC


class TestSafetensorsLoader(ModelLoaderConformance):
    loader_class = SafetensorsLoader
    spec = LOADER_SPECS["safetensors"]


class TransposingMethod(UnquantizedLinearMethod):
    """Forgets that fused shards stack along dim 0: reverses the shards after loading."""

    def process_weights_after_loading(self, layer: torch.nn.Module) -> None:
        with torch.no_grad():
            layer.weight.copy_(layer.weight.flip(0))  # type: ignore[operator]


class BrokenScheme(NoQuantScheme):
    def linear_method(self, layer_name: str) -> LinearMethod:
        return TransposingMethod()


def test_the_suite_fails_a_scheme_that_scrambles_weights() -> None:
    class TestBroken(QuantSchemeConformance):
        scheme_class = BrokenScheme

        def parameters(self) -> Mapping[str, Sequence[Any]]:
            return {"dtype": ("float32",), "bias": (True,)}

    report = run_conformance(TestBroken, check=False)
    assert [r.name for r in report.failed] == [
        "test_merged_linear_matches_float[float32-True]",
        "test_single_linear_matches_float[float32]",
    ]


class DroppingLoader(SafetensorsLoader):
    """Skips the last layer's MLP: the logits check must notice."""

    def load_weights(self, model: Any, source: Any, config: Any) -> None:
        from tenon.plugins.loaders.safetensors_loader import iter_safetensors, shard_paths

        weights = iter_safetensors(shard_paths(source.path))
        model.load_weights((n, t) for n, t in weights if "layers.1.mlp" not in n)


def test_the_suite_fails_a_loader_that_drops_weights() -> None:
    class TestDropping(ModelLoaderConformance):
        loader_class = DroppingLoader

    report = run_conformance(TestDropping, check=False)
    assert [r.name for r in report.failed] == ["test_loaded_weights_reproduce_reference_logits"]
