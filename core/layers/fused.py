"""A norm or an activation together with the linear after it.

Where the device has a fused kernel op (`rms_norm_linear`, `silu_and_mul_linear` in
`tenon.spec.ops`) and the linear's quantization method has a dense weight, one op call does
both (a decode step's one-token GEMV reads the norm's input itself: one launch fewer per use);
otherwise the two layers run one after the other, exactly as without this module.
"""

from __future__ import annotations

from typing import overload

import torch

from tenon.layers import ops
from tenon.layers.activation import SiluAndMul
from tenon.layers.linear import MergedLinear
from tenon.layers.norm import RMSNorm


@overload
def norm_then_linear(
    norm: RMSNorm, linear: MergedLinear, x: torch.Tensor, residual: None = None
) -> torch.Tensor: ...


@overload
def norm_then_linear(
    norm: RMSNorm, linear: MergedLinear, x: torch.Tensor, residual: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]: ...


def norm_then_linear(
    norm: RMSNorm,
    linear: MergedLinear,
    x: torch.Tensor,  # [num_tokens, hidden_size]
    residual: torch.Tensor | None = None,  # [num_tokens, hidden_size]
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """`linear(norm(x))`; with a residual, `(linear(norm(x + residual)), x + residual)`."""
    kernel = ops.selected("rms_norm_linear", x.device.type)
    if kernel is not None and linear.linear_method.dense_weight:
        fused: torch.Tensor | tuple[torch.Tensor, torch.Tensor] = kernel(
            x, norm.weight, norm.eps, linear.weight, linear.bias, residual
        )
        return fused
    if residual is None:
        return linear(norm(x))
    normed, residual = norm(x, residual)
    return linear(normed), residual


def silu_and_mul_then_linear(
    act_fn: SiluAndMul,
    linear: MergedLinear,
    x: torch.Tensor,  # [num_tokens, 2 * in_features] = [gate | up]
) -> torch.Tensor:  # [num_tokens, out_features]
    """`linear(act_fn(x))`."""
    kernel = ops.selected("silu_and_mul_linear", x.device.type)
    if kernel is not None and linear.linear_method.dense_weight:
        fused: torch.Tensor = kernel(x, linear.weight, linear.bias)
        return fused
    return linear(act_fn(x))
