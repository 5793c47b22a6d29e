"""Fixtures for the sampling tests: devices and seeded random logits."""

from __future__ import annotations

import pytest
import torch

_DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
        ],
    ),
]


@pytest.fixture(params=_DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    return torch.device(request.param)


@pytest.fixture
def random_logits() -> torch.Tensor:
    """float32 [6, 64], seeded, spread wide enough that filters drop a visible share of tokens."""
    generator = torch.Generator().manual_seed(1234)
    return torch.randn(6, 64, generator=generator) * 3.0
