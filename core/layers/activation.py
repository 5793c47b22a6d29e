"""Gated activations."""

from __future__ import annotations

import torch


class SiluAndMul(torch.nn.Module):
    """The SwiGLU gate: x = [gate | up] -> silu(gate) * up."""

    def forward(
        self,
        x: torch.Tensor,  # [num_tokens, 2 * intermediate_size]
    ) -> torch.Tensor:  # [num_tokens, intermediate_size]
        intermediate_size = x.shape[-1] // 2
        return torch.nn.functional.silu(x[..., :intermediate_size]) * x[..., intermediate_size:]
