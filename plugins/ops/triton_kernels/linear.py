"""`tenon.spec.ops` linear: the Triton GEMV (`gemv`) where `gemv_table` says it beats cuBLAS,
torch.nn.functional.linear everywhere else (prefill, large MLP and head projections, float32,
tensors whose rows are not contiguous).

The choice reads only shapes, strides and dtypes, so a captured decode graph replays the
kernels picked at capture; a prefill-sized batch goes to torch after a shape check.
"""

from __future__ import annotations

import torch

from tenon.plugins.ops.triton_kernels.gemv import MAX_GEMV_TOKENS, gemv
from tenon.plugins.ops.triton_kernels.gemv_table import choose_gemv_config


def linear(
    x: torch.Tensor,  # [num_tokens, in_features]
    weight: torch.Tensor,  # [out_features, in_features]
    bias: torch.Tensor | None = None,  # [out_features]
) -> torch.Tensor:  # [num_tokens, out_features]
    """`tenon.spec.ops` linear; x, weight and bias are left as they are."""
    if x.dim() == 2 and x.shape[0] <= MAX_GEMV_TOKENS and _fits_the_gemv(x, weight, bias):
        config = choose_gemv_config(x.shape[0], weight.shape[0], x.shape[1], x.dtype)
        if config is not None:
            return gemv(x, weight, bias, config)
    return torch.nn.functional.linear(x, weight, bias)


def _fits_the_gemv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Layouts the kernels read directly: unit column strides, one dtype. Anything else (a
    transposed weight, say) is torch's, which also raises for mismatched shapes."""
    if weight.dim() != 2 or weight.dtype != x.dtype or weight.shape[1] != x.shape[1]:
        return False
    if x.stride(1) != 1 or weight.stride(1) != 1:
        return False
    return bias is None or (
        tuple(bias.shape) == (weight.shape[0],) and bias.dtype == x.dtype and bias.stride(0) == 1
    )
