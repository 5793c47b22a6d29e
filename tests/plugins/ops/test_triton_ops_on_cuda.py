"""The Triton ops compiled for a CUDA GPU, in every dtype, graph capture included.

Run on the GPU machine with the interpreter off: `TRITON_INTERPRET=0 python -m pytest -m gpu
tests/plugins/ops`.
"""

from __future__ import annotations

import os

import pytest
import torch

from tenon.plugins.ops import triton_registration
from tenon.testing import OpConformance

SPECS = {spec.capabilities.op: spec for spec in triton_registration.tenon_ops()}

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(
        os.environ.get("TRITON_INTERPRET") == "1",
        reason="Triton's interpreter is on: run with TRITON_INTERPRET=0 to compile the kernels",
    ),
]


class TestTritonRmsNormOnCuda(OpConformance):
    spec = SPECS["rms_norm"]
    device = "cuda"


class TestTritonSiluAndMulOnCuda(OpConformance):
    spec = SPECS["silu_and_mul"]
    device = "cuda"


class TestTritonRotaryOnCuda(OpConformance):
    spec = SPECS["rotary"]
    device = "cuda"


class TestTritonLinearOnCuda(OpConformance):
    spec = SPECS["linear"]
    device = "cuda"


class TestTritonRmsNormLinearOnCuda(OpConformance):
    spec = SPECS["rms_norm_linear"]
    device = "cuda"


class TestTritonSiluAndMulLinearOnCuda(OpConformance):
    spec = SPECS["silu_and_mul_linear"]
    device = "cuda"
