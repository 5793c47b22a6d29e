"""Registers the Triton kernel ops (`tenon.plugins.ops.triton_kernels`) for CUDA and ROCm.

Imports nothing heavy: triton is imported only when the engine selects one of these targets.
Priority 10 puts them above the torch reference (0) wherever their capabilities fit. The linear
op declares the 16-bit dtypes only: its GEMV serves decode's bf16/fp16 projections, and a
float32 engine keeps plain torch.
"""

from __future__ import annotations

from collections.abc import Sequence

from tenon.spec import API_VERSION, OpCapabilities, OpSpec, hookimpl
from tenon.spec.ops import OP_NAMES

KERNELS_PACKAGE = "tenon.plugins.ops.triton_kernels"
DESCRIPTIONS = {
    "rms_norm": "Triton RMSNorm, one program per row, residual add fused",
    "silu_and_mul": "Triton SiLU-and-mul over tokens x column blocks",
    "rotary": "Triton rotary embedding in place on strided heads",
    "linear": "Triton GEMV for decode's few tokens where it beats cuBLAS, else F.linear",
}
ALL_DTYPES = ("float32", "float16", "bfloat16")
DTYPES = {"linear": ("float16", "bfloat16")}


@hookimpl
def tenon_ops() -> Sequence[OpSpec]:
    return [
        OpSpec(
            name=f"triton-{op.replace('_', '-')}",
            target=f"{KERNELS_PACKAGE}.{op}:{op}",
            api_version=API_VERSION,
            priority=10,
            description=DESCRIPTIONS[op],
            capabilities=OpCapabilities(
                op=op,
                device_types=("cuda", "rocm"),
                dtypes=DTYPES.get(op, ALL_DTYPES),
                supports_graphs=True,
            ),
        )
        for op in OP_NAMES
    ]
