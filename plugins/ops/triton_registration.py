"""Registers the Triton kernel ops (`tenon.plugins.ops.triton_kernels`) for CUDA and ROCm.

Imports nothing heavy: triton is imported only when the engine selects one of these targets.
Priority 10 puts them above the torch reference (0) wherever their capabilities fit. The linear
ops (linear and the fused rms_norm_linear, silu_and_mul_linear) declare the 16-bit dtypes only:
their GEMVs serve decode's bf16/fp16 projections, and a float32 engine keeps plain torch.
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
    "rms_norm_linear": "one-token GEMV normalising its input as it reads it, else the two ops",
    "silu_and_mul_linear": "one-token GEMV applying SiLU-and-mul as it reads, else the two ops",
}
ALL_DTYPES = ("float32", "float16", "bfloat16")
DTYPES = {op: ("float16", "bfloat16") for op in ("linear", "rms_norm_linear", "silu_and_mul_linear")}


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
