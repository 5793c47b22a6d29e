"""RMSNorm, numerically identical to HF's LlamaRMSNorm, with vLLM's fused residual add."""

from __future__ import annotations

from typing import overload

import torch

from tenon.layers import ops, ops_reference


class RMSNorm(torch.nn.Module):
    """`weight * (x / sqrt(mean(x^2) + eps))`, the statistics computed in float32."""

    def __init__(
        self, hidden_size: int, eps: float, *, dtype: torch.dtype, device: torch.device
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.eps = eps
        self.weight = torch.nn.Parameter(
            torch.ones(hidden_size, dtype=dtype, device=device), requires_grad=False
        )

    @overload
    def forward(self, x: torch.Tensor, residual: None = None) -> torch.Tensor: ...

    @overload
    def forward(
        self, x: torch.Tensor, residual: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def forward(
        self,
        x: torch.Tensor,  # [num_tokens, hidden_size]
        residual: torch.Tensor | None = None,  # [num_tokens, hidden_size]
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """`norm(x)`; with a residual, `(norm(x + residual), x + residual)`."""
        kernel = ops.selected("rms_norm", x.device.type)
        if kernel is not None:
            result: torch.Tensor | tuple[torch.Tensor, torch.Tensor] = kernel(
                x, self.weight, self.eps, residual
            )
            return result
        return ops_reference.rms_norm(x, self.weight, self.eps, residual)

    def extra_repr(self) -> str:
        return f"{self.hidden_size}, eps={self.eps}"
