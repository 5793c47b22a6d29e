"""The quantization scheme suite: `tenon.layers` linear layers under a scheme against float math.

    from tenon.testing import QuantSchemeConformance

    class TestMyScheme(QuantSchemeConformance):
        scheme_class = MyInt8Scheme
        spec = MY_SPEC            # optional: checks the target, enables the engine check
        atol, rtol = 0.05, 0.05   # how far from the float result the scheme may land

A layer is built with the scheme (`MergedLinear` with three fused shards, and `Linear`), every
shard's float weight is handed to the parameters' `weight_loader`s in the checkpoint's form
(`checkpoint_tensors`; by default the float weight itself, as a scheme that quantizes at load
time receives it), `process_weights_after_loading` runs, and `forward` must equal
`x @ W.T + b` within the tolerance. Once installed, the engine selects the scheme for
`LLM(..., quantization=<method>)` and must give the tokens the paged runner gives with the same
scheme on the same checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pytest
import torch

from tenon.layers.linear import Linear, MergedLinear, process_weights_after_loading
from tenon.plugin_host import load_plugins
from tenon.plugin_host.targets import import_target
from tenon.spec import PluginKind, QuantSchemeSpec, Requirements
from tenon.spec.quantization import LinearMethod, QuantScheme
from tenon.testing.suite import ConformanceSuite

INPUT_SIZE = 32
OUTPUT_SIZES = (16, 8, 8)


class QuantSchemeConformance(ConformanceSuite):
    """Set `scheme_class`; optionally `quant_config`, `spec`, `atol`/`rtol`, `dtypes`."""

    scheme_class: ClassVar[type[QuantScheme]]
    quant_config: ClassVar[Mapping[str, Any] | None] = None
    spec: ClassVar[QuantSchemeSpec | None] = None
    atol: ClassVar[float] = 1e-5
    rtol: ClassVar[float] = 1e-5
    dtypes: ClassVar[tuple[str, ...]] = ("float32", "bfloat16")

    def checkpoint_tensors(self, weight: torch.Tensor) -> Mapping[str, torch.Tensor]:
        """Parameter name -> tensor a checkpoint holds for one float weight shard
        [out_features, in_features]. Override for pre-quantized checkpoint formats."""
        return {"weight": weight}

    def scheme(self) -> QuantScheme:
        return self.scheme_class.from_config(self.quant_config)

    def parameters(self) -> Mapping[str, Sequence[Any]]:
        return {"dtype": self.dtypes, "bias": (False, True)}

    def test_spec_names_this_scheme(self) -> None:
        if self.spec is None:
            pytest.skip("no `spec` set on the suite: its target is not checked")
        assert import_target(self.spec.target) is self.scheme_class

    def test_every_layer_gets_a_linear_method(self) -> None:
        scheme = self.scheme()
        assert isinstance(scheme, QuantScheme)
        for name in ("model.layers.0.self_attn.qkv_proj", "lm_head"):
            assert isinstance(scheme.linear_method(name), LinearMethod)

    def test_merged_linear_matches_float(self, dtype: str, bias: bool) -> None:
        self.check_layer(OUTPUT_SIZES, dtype=dtype, bias=bias, seed=0)

    def test_single_linear_matches_float(self, dtype: str) -> None:
        self.check_layer((24,), dtype=dtype, bias=False, seed=1)

    def test_engine_uses_the_scheme(self) -> None:
        if self.spec is None:
            pytest.skip("no `spec` set on the suite: the engine selects schemes by method")
        method = self.spec.capabilities.methods[0]
        decision = load_plugins().resolve(
            PluginKind.QUANT_SCHEME, Requirements(quantization=method, device_type="cpu")
        )
        if decision.chosen is None or decision.chosen.name != self.spec.name:
            pytest.skip(
                f"the installed plugins do not select {self.spec.name!r} for quantization "
                f"{method!r}: install the plugin's package (pip install -e .)"
            )
        from tenon.testing.quant_engine import check_engine_matches_paged_runner

        check_engine_matches_paged_runner(self.scheme_class, method, self.spec.name)

    def check_layer(
        self, output_sizes: tuple[int, ...], *, dtype: str, bias: bool, seed: int
    ) -> None:
        torch_dtype = getattr(torch, dtype)
        generator = torch.Generator().manual_seed(seed)
        cls = MergedLinear if len(output_sizes) > 1 else Linear
        sizes: Any = output_sizes if len(output_sizes) > 1 else output_sizes[0]
        layer = cls(
            INPUT_SIZE, sizes, bias=bias, quant_scheme=self.scheme(),
            prefix="model.layers.0.self_attn.qkv_proj", dtype=torch_dtype,
            device=torch.device("cpu"),
        )  # fmt: skip
        shards = [torch.randn(size, INPUT_SIZE, generator=generator) for size in output_sizes]
        params = dict(layer.named_parameters())
        for index, shard in enumerate(shards):
            shard_index = index if len(output_sizes) > 1 else None
            for name, tensor in self.checkpoint_tensors(shard.to(torch_dtype)).items():
                param = params[name]
                loader = getattr(param, "weight_loader", None)
                assert loader is not None, f"parameter {name!r} has no weight_loader"
                loader(param, tensor, shard_index)
        bias_values = torch.randn(sum(output_sizes), generator=generator)
        if bias:
            assert layer.bias is not None
            for index, rows in enumerate(bias_values.split(list(output_sizes))):
                layer.bias.weight_loader(layer.bias, rows.to(torch_dtype), index)  # type: ignore[attr-defined]
        process_weights_after_loading(layer)
        x = torch.randn(5, INPUT_SIZE, generator=generator)  # [num_tokens, input_size]
        with torch.inference_mode():
            output = layer(x.to(torch_dtype))  # [num_tokens, sum(output_sizes)]
        weight = torch.cat(shards).to(torch_dtype).float()
        expected = x.to(torch_dtype).float() @ weight.T
        if bias:
            expected = expected + bias_values.to(torch_dtype).float()
        assert output.shape == expected.shape, f"{tuple(output.shape)} != {tuple(expected.shape)}"
        assert output.dtype == torch_dtype, f"output dtype {output.dtype}, expected {torch_dtype}"
        atol, rtol = self.atol, self.rtol
        if dtype != "float32":  # half-precision activations round the result as well
            atol, rtol = atol + 0.05, rtol + 0.02
        torch.testing.assert_close(output.float(), expected, atol=atol, rtol=rtol)
