"""`tenon.spec.ops` rms_norm_linear: for one token, a GEMV that normalises its input as it
reads it (`gemv_fused.gemv_rms_norm`, one launch instead of two); for anything else the Triton
rms_norm and linear ops in a row. The choice reads shapes, strides and dtypes only.
"""

from __future__ import annotations

import torch

from tenon.plugins.ops.triton_kernels.gemv_fused import gemv_rms_norm
from tenon.plugins.ops.triton_kernels.gemv_table import choose_fused_gemv_config
from tenon.plugins.ops.triton_kernels.linear import linear
from tenon.plugins.ops.triton_kernels.rms_norm import rms_norm


def rms_norm_linear(
    x: torch.Tensor,  # [num_tokens, hidden]
    norm_weight: torch.Tensor,  # [hidden]
    eps: float,
    weight: torch.Tensor,  # [out_features, hidden]
    bias: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,  # [num_tokens, hidden]
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    fusable = bias is None and weight.dim() == 2 and weight.shape[-1] == x.shape[-1]
    config = choose_fused_gemv_config(x, weight) if fusable else None
    fits = (
        config is not None
        and norm_weight.dtype == x.dtype
        and (residual is None or (residual.shape == x.shape and residual.dtype == x.dtype))
    )
    if fits:
        assert config is not None
        out, summed = gemv_rms_norm(x, norm_weight, eps, weight, residual, config=config)
        if residual is None:
            return out
        assert summed is not None
        return out, summed
    if residual is None:
        normed = rms_norm(x, norm_weight, eps)
        assert isinstance(normed, torch.Tensor)
        return linear(normed, weight, bias)
    normed, summed = rms_norm(x, norm_weight, eps, residual)
    return linear(normed, weight, bias), summed
