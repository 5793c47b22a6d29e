# mypy: allow-untyped-defs
"""The KV write kernel: this step's key and value rows into their slots of the paged cache.

One program per token writes all KV heads of its key row and of its value row:

    slot_mapping[t] = block * block_size + offset
    kv_layer[block, 0, offset] = key[t]      # [num_kv_heads, head_size]
    kv_layer[block, 1, offset] = value[t]

Padding tokens carry a slot in block 0 (the null block), which nobody reads, so they are written
like any other token and need no branch. Decode steps write from inside the decode kernel
(`write_token_kv`, one KV head per program) and launch no kernel of their own.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from tenon.plugins.attention.triton_paged.launch_config import next_power_of_2


@triton.jit
def write_token_kv(
    key_ptr, value_ptr, kv_ptr, slot_mapping_ptr, token, heads, dims, mask,
    key_stride_token, key_stride_head, value_stride_token, value_stride_head,
    kv_stride_block, kv_stride_component, kv_stride_offset, kv_stride_head,
    BLOCK_SIZE: tl.constexpr,
):  # fmt: skip
    """Token `token`'s key and value rows of KV heads `heads` ([H, 1]) into its slot."""
    token = token.to(tl.int64)
    key = tl.load(key_ptr + token * key_stride_token + heads * key_stride_head + dims, mask=mask)
    value = tl.load(
        value_ptr + token * value_stride_token + heads * value_stride_head + dims, mask=mask
    )
    slot = tl.load(slot_mapping_ptr + token).to(tl.int64)
    store_kv_at_slot(
        kv_ptr, slot, heads, dims, mask, key, value,
        kv_stride_block, kv_stride_component, kv_stride_offset, kv_stride_head, BLOCK_SIZE,
    )  # fmt: skip


@triton.jit
def store_kv_at_slot(
    kv_ptr, slot, heads, dims, mask, key, value,
    kv_stride_block, kv_stride_component, kv_stride_offset, kv_stride_head,
    BLOCK_SIZE: tl.constexpr,
):  # fmt: skip
    """Rows `key` and `value` (KV heads `heads` x `dims`, broadcast like them) into `slot`."""
    block = slot // BLOCK_SIZE
    offset = slot % BLOCK_SIZE
    target = kv_ptr + block * kv_stride_block + offset * kv_stride_offset + heads * kv_stride_head
    tl.store(target + dims, key.to(kv_ptr.dtype.element_ty), mask=mask)
    tl.store(target + kv_stride_component + dims, value.to(kv_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _write_kv_kernel(
    key_ptr,  # [num_tokens, num_kv_heads, head_size]
    value_ptr,  # [num_tokens, num_kv_heads, head_size]
    kv_ptr,  # [num_blocks, 2, block_size, num_kv_heads, head_size] (strided)
    slot_mapping_ptr,  # int64 [num_tokens]
    key_stride_token,
    key_stride_head,
    value_stride_token,
    value_stride_head,
    kv_stride_block,
    kv_stride_component,
    kv_stride_offset,
    kv_stride_head,
    NUM_KV_HEADS: tl.constexpr,
    HEAD_SIZE: tl.constexpr,
    HEADS_ROWS: tl.constexpr,  # NUM_KV_HEADS padded to a power of two
    HEAD_ROWS: tl.constexpr,  # HEAD_SIZE padded to a power of two
    BLOCK_SIZE: tl.constexpr,
):
    heads = tl.arange(0, HEADS_ROWS)[:, None]
    dims = tl.arange(0, HEAD_ROWS)[None, :]
    write_token_kv(
        key_ptr, value_ptr, kv_ptr, slot_mapping_ptr, tl.program_id(0), heads, dims,
        (heads < NUM_KV_HEADS) & (dims < HEAD_SIZE),
        key_stride_token, key_stride_head, value_stride_token, value_stride_head,
        kv_stride_block, kv_stride_component, kv_stride_offset, kv_stride_head, BLOCK_SIZE,
    )  # fmt: skip


def write_kv(
    key: torch.Tensor,  # [num_tokens, num_kv_heads, head_size]
    value: torch.Tensor,  # [num_tokens, num_kv_heads, head_size]
    kv_layer: torch.Tensor,  # [num_blocks, 2, block_size, num_kv_heads, head_size] (strided)
    slot_mapping: torch.Tensor,  # int64 [>= num_tokens]
) -> None:
    """Scatter the rows of `key` and `value` into `kv_layer` at `slot_mapping[:num_tokens]`."""
    num_tokens, num_kv_heads, head_size = key.shape
    if num_tokens == 0:
        return
    if key.stride(-1) != 1:
        key = key.contiguous()
    if value.stride(-1) != 1:
        value = value.contiguous()
    assert kv_layer.stride(-1) == 1, "the KV cache's head dimension must be contiguous"
    _write_kv_kernel[(num_tokens,)](
        key, value, kv_layer, slot_mapping,
        key.stride(0), key.stride(1), value.stride(0), value.stride(1),
        kv_layer.stride(0), kv_layer.stride(1), kv_layer.stride(2), kv_layer.stride(3),
        NUM_KV_HEADS=num_kv_heads,
        HEAD_SIZE=head_size,
        HEADS_ROWS=next_power_of_2(num_kv_heads),
        HEAD_ROWS=next_power_of_2(head_size),
        BLOCK_SIZE=kv_layer.shape[2],
        num_warps=4 if num_kv_heads * head_size >= 1024 else 1,
    )  # fmt: skip
