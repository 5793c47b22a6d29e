"""Gated activations."""

from __future__ import annotations

import torch

from tenon.layers import ops, ops_reference


class SiluAndMul(torch.nn.Module):
    """The SwiGLU gate: x = [gate | up] -> silu(gate) * up."""

    def forward(
        self,
        x: torch.Tensor,  # [num_tokens, 2 * intermediate_size]
    ) -> torch.Tensor:  # [num_tokens, intermediate_size]
        kernel = ops.selected("silu_and_mul", x.device.type)
        if kernel is not None:
            result: torch.Tensor = kernel(x)
            return result
        return ops_reference.silu_and_mul(x)
