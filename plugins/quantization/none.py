"""The "none" quantization scheme: weights stay in the model dtype, applied with a plain matmul."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch

from tenon.layers import ops, ops_reference
from tenon.layers.weights import sharded_weight_loader
from tenon.spec.quantization import LinearMethod, QuantScheme


class UnquantizedLinearMethod(LinearMethod):
    """`layer.weight`: [sum(output_sizes), input_size], shards stacked along dim 0."""

    dense_weight = True

    def create_weights(
        self,
        layer: torch.nn.Module,
        input_size: int,
        output_sizes: Sequence[int],
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        weight = torch.nn.Parameter(
            torch.empty(sum(output_sizes), input_size, dtype=dtype, device=device),
            requires_grad=False,
        )
        weight.weight_loader = sharded_weight_loader(output_sizes)  # type: ignore[attr-defined]
        layer.register_parameter("weight", weight)

    def apply(
        self,
        layer: torch.nn.Module,
        x: torch.Tensor,  # [num_tokens, input_size]
        bias: torch.Tensor | None,  # [sum(output_sizes)]
    ) -> torch.Tensor:  # [num_tokens, sum(output_sizes)]
        weight = cast(torch.Tensor, layer.weight)
        linear = ops.selected("linear", x.device.type) or ops_reference.linear
        return cast(torch.Tensor, linear(x, weight, bias))


class NoQuantScheme(QuantScheme):
    """Every linear layer gets an `UnquantizedLinearMethod`."""

    @classmethod
    def from_config(cls, quant_config: Mapping[str, Any] | None) -> NoQuantScheme:
        return cls()

    def linear_method(self, layer_name: str) -> LinearMethod:
        return UnquantizedLinearMethod()
