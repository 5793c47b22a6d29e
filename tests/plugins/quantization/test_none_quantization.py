"""The "none" scheme: its registration, and the unquantized linear method on its own."""

from __future__ import annotations

import importlib

import pluggy
import torch

from tenon.plugins.quantization import registration
from tenon.plugins.quantization.none import NoQuantScheme, UnquantizedLinearMethod
from tenon.spec import PROJECT_NAME, Requirements, hookspecs


def test_registration_names_an_importable_scheme_for_unquantized_checkpoints() -> None:
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(registration)
    [specs] = manager.hook.tenon_quant_schemes()
    [spec] = specs
    assert spec.name == "none"
    module, _, qualname = spec.target.partition(":")
    assert getattr(importlib.import_module(module), qualname) is NoQuantScheme
    assert spec.capabilities.unmet(Requirements()) == ()
    assert spec.capabilities.unmet(Requirements(quantization="none")) == ()
    assert spec.capabilities.unmet(Requirements(quantization="fp8")) != ()


def test_unquantized_method_creates_fused_weight_and_applies_linear() -> None:
    scheme = NoQuantScheme.from_config(None)
    method = scheme.linear_method("model.layers.0.mlp.gate_up_proj")
    assert isinstance(method, UnquantizedLinearMethod)
    layer = torch.nn.Module()
    method.create_weights(layer, 5, [3, 4], torch.bfloat16, torch.device("cpu"))
    assert layer.weight.shape == (7, 5) and layer.weight.dtype == torch.bfloat16

    generator = torch.Generator().manual_seed(0)
    gate, up = torch.randn(3, 5, generator=generator), torch.randn(4, 5, generator=generator)
    layer.weight.weight_loader(layer.weight, up, 1)
    layer.weight.weight_loader(layer.weight, gate, 0)
    assert torch.equal(layer.weight, torch.cat([gate, up]).to(torch.bfloat16))

    x = torch.randn(2, 5, generator=generator).to(torch.bfloat16)
    bias = torch.randn(7, generator=generator).to(torch.bfloat16)
    expected = torch.nn.functional.linear(x, layer.weight, bias)
    assert torch.equal(method.apply(layer, x, bias), expected)
