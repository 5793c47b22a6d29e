"""The Triton ops against the torch reference, in Triton's interpreter on CPU tensors.

float32 and float16 only: the interpreter rounds bfloat16 through numpy wrongly, so bfloat16
is checked on the GPU (test_triton_ops_on_cuda.py).
"""

from __future__ import annotations

import os

import pytest
import torch

from tenon.plugins.ops import triton_registration
from tenon.testing import OpConformance

SPECS = {spec.capabilities.op: spec for spec in triton_registration.tenon_ops()}
CPU_DTYPES = ("float32", "float16")

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("TRITON_INTERPRET") != "1",
        reason="the CPU tests run the kernels in Triton's interpreter (TRITON_INTERPRET=1)",
    ),
    # The interpreter evaluates exp in numpy, which warns where float32 overflows to inf (the
    # large-gate case does that on purpose).
    pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning"),
]


class TestTritonRmsNorm(OpConformance):
    spec = SPECS["rms_norm"]
    dtypes = CPU_DTYPES


class TestTritonSiluAndMul(OpConformance):
    spec = SPECS["silu_and_mul"]
    dtypes = CPU_DTYPES


class TestTritonRotary(OpConformance):
    spec = SPECS["rotary"]
    dtypes = CPU_DTYPES


def test_rms_norm_with_a_residual_writes_in_place() -> None:
    from tenon.layers import ops_reference
    from tenon.plugins.ops.triton_kernels.rms_norm import rms_norm

    generator = torch.Generator().manual_seed(3)
    x, residual = (torch.randn(4, 72, generator=generator).half() for _ in range(2))
    weight = torch.randn(72, generator=generator).half()
    expected, expected_sum = ops_reference.rms_norm(x, weight, 1e-6, residual)
    x_in, residual_in = x.clone(), residual.clone()
    normed, summed = rms_norm(x_in, weight, 1e-6, residual_in)
    # No allocation: the normalised rows land in x, the sum in residual.
    assert normed is x_in and summed is residual_in
    assert torch.equal(summed, expected_sum) and torch.equal(normed, expected)


def test_rotary_of_a_transposed_view_rotates_its_storage() -> None:
    from tenon.layers import ops_reference
    from tenon.layers.rotary import RotaryEmbedding
    from tenon.plugins.ops.triton_kernels.rotary import rotary

    generator = torch.Generator().manual_seed(4)
    embedding = RotaryEmbedding(
        16, 16, 32, 10000.0, None, dtype=torch.float32, device=torch.device("cpu")
    )
    storage = torch.randn(3, 16, 2, generator=generator)  # heads as [token, feature, head]
    heads = storage.transpose(1, 2)  # [3, 2, 16], feature stride 2
    positions = torch.tensor([5, 0, 31])
    expected = ops_reference.rotary(
        positions, heads.clone(), embedding.cos_cache, embedding.signed_sin_cache
    )
    assert rotary(positions, heads, embedding.cos_cache, embedding.signed_sin_cache) is heads
    torch.testing.assert_close(storage.transpose(1, 2), expected, atol=1e-6, rtol=1e-6)


class TestTritonLinear(OpConformance):
    spec = SPECS["linear"]
    dtypes = ("float16",)  # the op declares the 16-bit dtypes; bfloat16 runs on the GPU


class TestTritonRmsNormLinear(OpConformance):
    spec = SPECS["rms_norm_linear"]
    dtypes = ("float16",)  # 16-bit only, as linear; bfloat16 runs on the GPU


class TestTritonSiluAndMulLinear(OpConformance):
    spec = SPECS["silu_and_mul_linear"]
    dtypes = ("float16",)
