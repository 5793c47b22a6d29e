"""`tenon.spec.ops` silu_and_mul_linear: for one token, a GEMV that applies SiLU-and-mul to its
input as it reads it (`gemv_fused.gemv_silu_and_mul`, the same values as the two ops in a row,
one launch); for anything else the Triton silu_and_mul and linear ops in a row.
"""

from __future__ import annotations

import torch

from tenon.plugins.ops.triton_kernels.gemv_fused import gemv_silu_and_mul
from tenon.plugins.ops.triton_kernels.gemv_table import choose_fused_gemv_config
from tenon.plugins.ops.triton_kernels.linear import linear
from tenon.plugins.ops.triton_kernels.silu_and_mul import silu_and_mul


def silu_and_mul_linear(
    x: torch.Tensor,  # [num_tokens, 2 * in_features] = [gate | up]
    weight: torch.Tensor,  # [out_features, in_features]
    bias: torch.Tensor | None = None,
) -> torch.Tensor:  # [num_tokens, out_features]
    fusable = bias is None and weight.dim() == 2 and x.shape[-1] == 2 * weight.shape[-1]
    config = choose_fused_gemv_config(x, weight) if fusable else None
    if config is not None:
        return gemv_silu_and_mul(x, weight, config=config)
    return linear(silu_and_mul(x), weight, bias)
