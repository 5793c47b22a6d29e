"""RMSNorm, numerically identical to HF's LlamaRMSNorm, with vLLM's fused residual add."""

from __future__ import annotations

from typing import overload

import torch


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
        if residual is None:
            return self._norm(x)
        # The sum is taken in the activation dtype, as HF's decoder layer adds its residuals.
        summed = x + residual
        return self._norm(summed), summed

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        input_dtype = x.dtype
        hidden = x.to(torch.float32)
        variance = hidden.pow(2).mean(-1, keepdim=True)
        scale = torch.rsqrt(variance.add_(self.eps))
        # In place on our own float32 copy: the same bits as HF's out-of-place math, two
        # allocations fewer (measured 16.5 against 20 us per call for one row).
        hidden = hidden * scale if hidden is x else hidden.mul_(scale)
        return self.weight * hidden.to(input_dtype)

    def extra_repr(self) -> str:
        return f"{self.hidden_size}, eps={self.eps}"
