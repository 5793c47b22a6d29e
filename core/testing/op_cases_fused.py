"""Cases for the fused ops (`tenon.spec.ops`): a norm or an activation with the linear after it.

The reference is the two ops in a row. A fused implementation may skip the rounding of the
intermediate (the normalised or activated row) to the activation dtype, so values are checked
at twice the dtype's tolerance; the residual sum is checked exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import torch

from tenon.layers import ops_reference
from tenon.testing.op_cases import (
    OpInputs,
    Tolerance,
    assert_matches,
    poison_freed_memory,
    random_tensor,
)

FUSED_OPS = ("rms_norm_linear", "silu_and_mul_linear")


def fused_tolerance(tolerance: Tolerance) -> Tolerance:
    atol, rtol = tolerance
    return 2 * atol, 2 * rtol


def _weight_and_bias(
    out_features: int, in_features: int, with_bias: bool, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None]:
    # Unit-variance outputs whatever in_features is, so the tolerance means the same.
    weight = random_tensor((out_features, in_features), generator, scale=in_features**-0.5)
    bias = random_tensor((out_features,), generator) if with_bias else None
    return weight, bias


@attrs.frozen(kw_only=True)
class RmsNormLinearCase:
    num_tokens: int
    hidden_size: int
    out_features: int
    with_residual: bool
    with_bias: bool = False
    eps: float = 1e-6

    def __str__(self) -> str:
        label = f"tokens{self.num_tokens}-hidden{self.hidden_size}-out{self.out_features}"
        return label + ("-residual" if self.with_residual else "") + ("-bias" if self.with_bias else "")

    def inputs(self, dtype: torch.dtype, device: torch.device, seed: int) -> OpInputs:
        generator = torch.Generator().manual_seed(seed)
        shape = (self.num_tokens, self.hidden_size)
        x = random_tensor(shape, generator)
        norm_weight = 1.0 + 0.5 * random_tensor((self.hidden_size,), generator)
        residual = random_tensor(shape, generator)
        weight, bias = _weight_and_bias(self.out_features, self.hidden_size, self.with_bias, generator)

        def moved(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.to(dtype=dtype, device=device)

        return OpInputs(args=(moved(x), moved(norm_weight), self.eps, moved(weight), moved(bias),
                              moved(residual) if self.with_residual else None))

    def check(self, function: Callable[..., Any], inputs: OpInputs, tolerance: Tolerance) -> None:
        x, norm_weight, eps, weight, bias, residual = inputs.args
        copies = [None if arg is None else arg.clone() for arg in (x, residual)]
        expected = ops_reference.rms_norm_linear(copies[0], norm_weight, eps, weight, bias, copies[1])
        poison_freed_memory(self.num_tokens * self.out_features, x.dtype, x.device)
        result = function(x, norm_weight, eps, weight, bias, residual)
        tolerance = fused_tolerance(tolerance)
        if residual is None:
            assert_matches(result, expected, tolerance, f"rms_norm_linear {self}")
            return
        assert isinstance(result, tuple) and len(result) == 2, (
            f"rms_norm_linear with a residual must return (output, x + residual), got {type(result)}"
        )
        expected_output, expected_sum = expected
        assert_matches(result[1], expected_sum, (0.0, 0.0), f"rms_norm_linear {self}: x + residual")
        assert_matches(result[0], expected_output, tolerance, f"rms_norm_linear {self}: output")


@attrs.frozen(kw_only=True)
class SiluAndMulLinearCase:
    num_tokens: int
    intermediate_size: int
    out_features: int
    with_bias: bool = False

    def __str__(self) -> str:
        label = f"tokens{self.num_tokens}-intermediate{self.intermediate_size}-out{self.out_features}"
        return label + ("-bias" if self.with_bias else "")

    def inputs(self, dtype: torch.dtype, device: torch.device, seed: int) -> OpInputs:
        generator = torch.Generator().manual_seed(seed)
        x = random_tensor((self.num_tokens, 2 * self.intermediate_size), generator)
        weight, bias = _weight_and_bias(self.out_features, self.intermediate_size, self.with_bias,
                                        generator)
        return OpInputs(args=(x.to(dtype=dtype, device=device), weight.to(dtype=dtype, device=device),
                              None if bias is None else bias.to(dtype=dtype, device=device)))

    def check(self, function: Callable[..., Any], inputs: OpInputs, tolerance: Tolerance) -> None:
        x, weight, bias = inputs.args
        expected = ops_reference.silu_and_mul_linear(x, weight, bias)
        x_before = x.clone()
        poison_freed_memory(expected.numel(), x.dtype, x.device)
        assert_matches(function(x, weight, bias), expected, fused_tolerance(tolerance),
                       f"silu_and_mul_linear {self}")
        assert torch.equal(x, x_before), "silu_and_mul_linear must leave x as it was"
