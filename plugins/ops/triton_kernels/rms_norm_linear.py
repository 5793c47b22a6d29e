"""`tenon.spec.ops` rms_norm_linear: for one token, a GEMV that normalises its input as it
reads it (`gemv_fused.gemv_rms_norm`, one launch instead of two); for anything else the Triton
rms_norm and linear ops in a row. The choice reads shapes, strides and dtypes only.
"""

from __future__ import annotations

import torch

from tenon.plugins.ops.triton_kernels.gemv import GEMV_DTYPES, GemvConfig
from tenon.plugins.ops.triton_kernels.gemv_fused import gemv_rms_norm
from tenon.plugins.ops.triton_kernels.gemv_table import TUNED
from tenon.plugins.ops.triton_kernels.linear import linear
from tenon.plugins.ops.triton_kernels.rms_norm import rms_norm

# One-token launches for weights the table does not tune with the FMA kernel (qkv: cuBLAS
# alone there, as fast as this launch, measured in gemv_table's docstring). The fused kernels
# take TUNED's FMA launches otherwise: a sweep of 32 launches per shape with the fusion in
# (`benchmarks/diagnostics/fused_gemv_sweep.py`, `results/fused-gemv-sweep-h200.txt`) found
# none more than 0.5 us faster.
DEFAULT_FUSED_CONFIG = GemvConfig(kernel="fma", block_n=16, block_k=256, num_splits=1,
                                  num_warps=4, num_stages=3)


def fused_gemv_config(x: torch.Tensor, weight: torch.Tensor) -> GemvConfig | None:
    """The one-token FMA launch for a GEMV over `weight` with a fused prologue on `x`, or None
    (run unfused): one token, 16-bit x and weight of one dtype, unit column strides. The caller
    checks how x's width relates to the weight's."""
    if x.dim() != 2 or x.shape[0] != 1 or x.dtype not in GEMV_DTYPES:
        return None
    if weight.dim() != 2 or weight.dtype != x.dtype or x.stride(1) != 1 or weight.stride(1) != 1:
        return None
    tuned = TUNED.get((weight.shape[0], weight.shape[1], 1))
    if tuned is not None and tuned.kernel == "fma" and tuned.num_splits == 1:
        return tuned
    return DEFAULT_FUSED_CONFIG


def rms_norm_linear(
    x: torch.Tensor,  # [num_tokens, hidden]
    norm_weight: torch.Tensor,  # [hidden]
    eps: float,
    weight: torch.Tensor,  # [out_features, hidden]
    bias: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,  # [num_tokens, hidden]
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    fusable = bias is None and weight.dim() == 2 and weight.shape[-1] == x.shape[-1]
    config = fused_gemv_config(x, weight) if fusable else None
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
