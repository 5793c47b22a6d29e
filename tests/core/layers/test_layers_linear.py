"""Fused linear layers: shard loading against separate nn.Linear, and the post-load hook."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

from tenon.layers import Linear, MergedLinear, load_param, process_weights_after_loading
from tenon.plugins.quantization.none import NoQuantScheme, UnquantizedLinearMethod
from tenon.spec.quantization import LinearMethod, QuantScheme

CPU = torch.device("cpu")


@pytest.mark.parametrize("bias", [True, False])
def test_merged_linear_loads_shards_like_separate_projections(bias: bool) -> None:
    torch.manual_seed(0)
    sizes = [16, 8, 8]  # q, k, v
    separate = [torch.nn.Linear(12, size, bias=bias) for size in sizes]
    merged = MergedLinear(
        12,
        sizes,
        bias=bias,
        quant_scheme=NoQuantScheme.from_config(None),
        prefix="layers.0.self_attn.qkv_proj",
        dtype=torch.float32,
        device=CPU,
    )
    params = dict(merged.named_parameters())
    assert sorted(params) == (["bias", "weight"] if bias else ["weight"])
    # Load out of order: each shard must land at its own offset regardless.
    for shard_index in (2, 0, 1):
        load_param(params, "weight", separate[shard_index].weight.detach(), shard_index)
        if bias:
            load_param(params, "bias", separate[shard_index].bias.detach(), shard_index)

    x = torch.randn(5, 12)
    expected = torch.cat([linear(x) for linear in separate], dim=-1)
    torch.testing.assert_close(merged(x), expected, atol=1e-6, rtol=1e-6)


def test_single_linear_and_whole_parameter_load() -> None:
    torch.manual_seed(1)
    reference = torch.nn.Linear(6, 10, bias=True)
    linear = Linear(
        6, 10, bias=True, quant_scheme=NoQuantScheme(), prefix="lm", dtype=torch.float32, device=CPU
    )
    params = dict(linear.named_parameters())
    load_param(params, "weight", reference.weight.detach())
    load_param(params, "bias", reference.bias.detach())
    x = torch.randn(3, 6)
    assert torch.equal(linear(x), torch.nn.functional.linear(x, reference.weight, reference.bias))


def test_shard_shape_mismatch_names_both_shapes() -> None:
    merged = MergedLinear(
        4,
        [6, 2],
        bias=False,
        quant_scheme=NoQuantScheme(),
        prefix="p",
        dtype=torch.float32,
        device=CPU,
    )
    params = dict(merged.named_parameters())
    with pytest.raises(ValueError, match=r"\(2, 4\).*\(3, 4\)"):
        load_param(params, "weight", torch.zeros(3, 4), shard_index=1)
    with pytest.raises(ValueError, match=r"out of range"):
        load_param(params, "weight", torch.zeros(2, 4), shard_index=2)
    with pytest.raises(ValueError, match=r"no parameter named 'missing'"):
        load_param(params, "missing", torch.zeros(2, 4))


class _DoublingMethod(UnquantizedLinearMethod):
    """Rewrites the weight after loading, so the test can see the hook ran exactly once."""

    def process_weights_after_loading(self, layer: torch.nn.Module) -> None:
        layer.weight.data.mul_(2)


class _DoublingScheme(QuantScheme):
    @classmethod
    def from_config(cls, quant_config: object) -> _DoublingScheme:
        return cls()

    def linear_method(self, layer_name: str) -> LinearMethod:
        return _DoublingMethod() if layer_name.endswith("gate_up") else UnquantizedLinearMethod()


def _build(sizes: Sequence[int], prefix: str, scheme: QuantScheme) -> MergedLinear:
    return MergedLinear(
        4, sizes, bias=False, quant_scheme=scheme, prefix=prefix, dtype=torch.float32, device=CPU
    )


def test_process_weights_after_loading_reaches_every_linear_method() -> None:
    scheme = _DoublingScheme()
    model = torch.nn.Sequential(
        _build([3, 3], "mlp.gate_up", scheme), _build([6], "mlp.down", scheme)
    )
    torch.manual_seed(2)
    weights = [torch.randn(6, 4), torch.randn(6, 4)]
    for module, weight in zip(model, weights, strict=True):
        load_param(dict(module.named_parameters()), "weight", weight)

    process_weights_after_loading(model)

    assert torch.equal(model[0].weight, weights[0] * 2)
    assert torch.equal(model[1].weight, weights[1])
