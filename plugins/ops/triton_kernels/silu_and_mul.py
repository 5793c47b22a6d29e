"""SwiGLU's gate: [gate | up] -> silu(gate) * up, on a 2D grid of tokens x column blocks.

Tokens are grid axis 0 (up to 2^31 - 1 programs; axis 1 stops at 65535) and column blocks
axis 1. Rounding follows `tenon.layers.ops_reference.silu_and_mul`: torch rounds silu(gate) to
the activation dtype, then the product; the kernel computes each in float32 and rounds at the
same two places, so 16-bit results differ only where the float32 exp does.
"""

# Kernel arguments stay unannotated: Triton reads annotations as its own types.
# mypy: disable-error-code="no-untyped-def"

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tenon.plugins.ops.triton_kernels.launch import num_warps_for

BLOCK_BYTES = 4096  # of each input per program: two 16-byte vectors per thread at 4 warps


@triton.jit
def _silu_and_mul_kernel(
    x_ptr,  # [num_tokens, 2 * intermediate_size], rows x_row_stride apart
    out_ptr,  # [num_tokens, intermediate_size], rows out_row_stride apart
    x_row_stride,
    out_row_stride,
    intermediate_size,
    BLOCK_SIZE: tl.constexpr,
):
    token = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = cols < intermediate_size
    x_row = x_ptr + token * x_row_stride
    act_dtype = x_ptr.dtype.element_ty
    gate = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
    up = tl.load(x_row + intermediate_size + cols, mask=mask, other=0.0).to(tl.float32)
    # silu(g) = g / (1 + exp(-g)), the formula torch evaluates; rounded as torch's silu output.
    activated = (gate / (1.0 + tl.exp(-gate))).to(act_dtype).to(tl.float32)
    tl.store(out_ptr + token * out_row_stride + cols, (activated * up).to(act_dtype), mask=mask)


def silu_and_mul(
    x: torch.Tensor,  # [num_tokens, 2 * intermediate_size] = [gate | up]
) -> torch.Tensor:  # [num_tokens, intermediate_size]
    """`tenon.spec.ops` silu_and_mul; `x` is left as it was."""
    if x.shape[-1] % 2 != 0:
        raise ValueError(f"x's last dimension must be even ([gate | up]), got {x.shape[-1]}")
    intermediate_size = x.shape[-1] // 2
    rows = x.reshape(-1, x.shape[-1])  # [num_tokens, 2 * intermediate_size]
    if rows.stride(-1) != 1:
        rows = rows.contiguous()
    num_tokens = rows.shape[0]
    out = torch.empty((num_tokens, intermediate_size), dtype=x.dtype, device=x.device)
    if num_tokens > 0 and intermediate_size > 0:
        block_size = min(triton.next_power_of_2(intermediate_size), BLOCK_BYTES // x.element_size())
        grid = (num_tokens, triton.cdiv(intermediate_size, block_size))
        _silu_and_mul_kernel[grid](
            rows, out, rows.stride(0), out.stride(0), intermediate_size,
            BLOCK_SIZE=block_size,
            num_warps=num_warps_for(
                block_size, x.element_size(), vectors_per_thread=2, max_warps=4
            ),
        )  # fmt: skip
    return out.view(*x.shape[:-1], intermediate_size)
