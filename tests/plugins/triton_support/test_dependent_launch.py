"""Programmatic dependent launch (`tenon.plugins.triton_support.dependent_launch`): where it is
switched on, and, on a Hopper GPU, that a chain of kernels each reading the one before gives
the same bits with it as without it, eagerly and replayed in a CUDA graph (a kernel reading
before its wait would read its input half-written)."""

from __future__ import annotations

import os

import pytest
import torch

from tenon.plugins.triton_support import dependent_launch as module
from tenon.plugins.triton_support.dependent_launch import (
    ENV_SWITCH,
    dependent_launch,
    dependent_launch_options,
)


def test_off_on_the_cpu() -> None:
    assert not dependent_launch(torch.device("cpu"))
    assert dependent_launch_options(torch.device("cpu")) == {"DEPENDENT_LAUNCH": False}


def test_off_under_the_interpreter_and_by_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "_device_supports", lambda index: True)
    cuda = torch.device("cuda", 0)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.delenv(ENV_SWITCH, raising=False)
    assert dependent_launch(cuda)
    assert dependent_launch_options(cuda) == {"DEPENDENT_LAUNCH": True, "launch_pdl": True}
    monkeypatch.setenv(ENV_SWITCH, "0")
    assert not dependent_launch(cuda)
    monkeypatch.setenv(ENV_SWITCH, "1")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert not dependent_launch(cuda)


def test_this_triton_has_what_the_launch_needs() -> None:
    # Triton 3.4 and later (CI has 3.9, the GPU machine 3.6); without it the switch stays off.
    assert module._triton_supports()


on_hopper = pytest.mark.skipif(
    not torch.cuda.is_available()
    or torch.cuda.get_device_capability()[0] < module.MIN_CAPABILITY
    or os.environ.get("TRITON_INTERPRET") == "1",
    reason="needs a compute capability 9.0 GPU and compiled Triton kernels",
)


def _chain(x: torch.Tensor, weights: list[torch.Tensor], norm: torch.Tensor) -> torch.Tensor:
    """Fused norm GEMV -> rotary -> GEMV -> SiLU GEMV, each reading the kernel before it."""
    from tenon.plugins.ops.triton_kernels.gemv import gemv
    from tenon.plugins.ops.triton_kernels.gemv_fused import gemv_rms_norm, gemv_silu_and_mul
    from tenon.plugins.ops.triton_kernels.gemv_table import DEFAULT_FUSED_CONFIG, TUNED
    from tenon.plugins.ops.triton_kernels.rotary import rotary

    hidden = x
    positions = torch.full((1,), 37, dtype=torch.int64, device=x.device)
    angles = torch.arange(64, device=x.device).float()[:, None] * torch.rand(
        128, device=x.device, generator=torch.Generator(x.device).manual_seed(1)
    )
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    for up, down in zip(weights[0::2], weights[1::2], strict=True):
        projected, _ = gemv_rms_norm(hidden, norm, 1e-5, up, config=DEFAULT_FUSED_CONFIG)
        rotary(positions, projected.view(1, -1, 128), cos, sin)
        square = gemv(projected[:, :4096], down[:, :4096], None, TUNED[(4096, 4096, 1)])
        hidden = gemv_silu_and_mul(
            torch.cat([square, square], dim=1), down, config=TUNED[(4096, 4096, 1)]
        )
    return hidden


@pytest.mark.gpu
@on_hopper
def test_a_kernel_chain_gives_the_same_bits_with_and_without(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    generator = torch.Generator("cuda").manual_seed(0)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, device="cuda").to(torch.bfloat16)

    weights = [
        normal(8192, 4096) * 0.02 if i % 2 == 0 else normal(4096, 4096) * 0.02 for i in range(16)
    ]
    norm = normal(4096)
    x = normal(1, 4096)
    monkeypatch.setenv(ENV_SWITCH, "0")
    expected = _chain(x, weights, norm)
    monkeypatch.setenv(ENV_SWITCH, "1")
    assert dependent_launch(x.device)
    torch.testing.assert_close(_chain(x, weights, norm), expected, rtol=0, atol=0)

    static_x = x.clone()
    graph = torch.cuda.CUDAGraph()
    _chain(static_x, weights, norm)  # compile outside capture
    with torch.cuda.graph(graph):
        static_out = _chain(static_x, weights, norm)
    for seed in range(3):
        static_x.copy_(torch.randn(1, 4096, device="cuda", generator=generator.manual_seed(seed)))
        monkeypatch.setenv(ENV_SWITCH, "0")
        reference = _chain(static_x, weights, norm)
        graph.replay()
        torch.testing.assert_close(static_out, reference, rtol=0, atol=0)
