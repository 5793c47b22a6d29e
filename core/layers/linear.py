"""Linear projections whose storage and matmul belong to the model's quantization scheme.

A layer never multiplies by its weight itself: at build time it asks
`quant_scheme.linear_method(prefix)` for a `LinearMethod`, which registers the parameters
(`weight`, plus whatever a quantized format needs) and computes the forward. The bias, when
there is one, is the layer's own parameter, fused the same way as the weight's rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tenon.layers.weights import sharded_weight_loader
from tenon.spec.quantization import QuantScheme


class MergedLinear(torch.nn.Module):
    """Several projections of one input fused into one matmul (q, k, v or gate, up).

    The output is the projections' outputs concatenated in order: [num_tokens, sum(output_sizes)].
    """

    def __init__(
        self,
        input_size: int,
        output_sizes: Sequence[int],
        *,
        bias: bool,
        quant_scheme: QuantScheme,
        prefix: str,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        super().__init__()
        if not output_sizes or any(size <= 0 for size in output_sizes):
            raise ValueError(f"output_sizes must be positive sizes, got {list(output_sizes)}")
        self.input_size = input_size
        self.output_sizes = tuple(int(size) for size in output_sizes)
        self.prefix = prefix
        self.linear_method = quant_scheme.linear_method(prefix)
        self.linear_method.create_weights(self, input_size, self.output_sizes, dtype, device)
        self.bias: torch.nn.Parameter | None
        if bias:
            bias_param = torch.nn.Parameter(
                torch.empty(sum(self.output_sizes), dtype=dtype, device=device),
                requires_grad=False,
            )
            bias_param.weight_loader = sharded_weight_loader(self.output_sizes)  # type: ignore[attr-defined]
            self.bias = bias_param
        else:
            self.register_parameter("bias", None)

    def forward(
        self,
        x: torch.Tensor,  # [num_tokens, input_size]
    ) -> torch.Tensor:  # [num_tokens, sum(output_sizes)]
        return self.linear_method.apply(self, x, self.bias)

    def extra_repr(self) -> str:
        return (
            f"input_size={self.input_size}, output_sizes={self.output_sizes}, "
            f"bias={self.bias is not None}, method={type(self.linear_method).__name__}"
        )


class Linear(MergedLinear):
    """A single projection: a `MergedLinear` with one output."""

    def __init__(
        self,
        input_size: int,
        output_size: int,
        *,
        bias: bool,
        quant_scheme: QuantScheme,
        prefix: str,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        super().__init__(
            input_size,
            [output_size],
            bias=bias,
            quant_scheme=quant_scheme,
            prefix=prefix,
            dtype=dtype,
            device=device,
        )


def process_weights_after_loading(model: torch.nn.Module) -> None:
    """Let every linear layer's method post-process its loaded parameters (once, after loading)."""
    for module in model.modules():
        if isinstance(module, MergedLinear):
            module.linear_method.process_weights_after_loading(module)
