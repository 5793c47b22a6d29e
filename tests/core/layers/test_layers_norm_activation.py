"""RMSNorm against HF's LlamaRMSNorm, and the SwiGLU gate."""

from __future__ import annotations

import pytest
import torch
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from tenon.layers import RMSNorm, SiluAndMul


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rms_norm_matches_hf_bit_for_bit(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(0)
    hidden = (torch.randn(5, 32, generator=generator) * 3).to(dtype)
    residual = torch.randn(5, 32, generator=generator).to(dtype)
    weight = (torch.rand(32, generator=generator) + 0.5).to(dtype)
    hf = LlamaRMSNorm(32, eps=1e-5).to(dtype)
    hf.weight.data.copy_(weight)
    ours = RMSNorm(32, 1e-5, dtype=dtype, device=torch.device("cpu"))
    ours.weight.data.copy_(weight)

    with torch.no_grad():
        assert torch.equal(ours(hidden), hf(hidden))
        normed, summed = ours(hidden, residual)
        assert torch.equal(summed, hidden + residual)
        assert torch.equal(normed, hf(hidden + residual))


def test_silu_and_mul() -> None:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(4, 12, generator=generator)
    expected = torch.nn.functional.silu(x[:, :6]) * x[:, 6:]
    assert torch.equal(SiluAndMul()(x), expected)
