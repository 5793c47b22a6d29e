"""Sizing and allocating the KV cache: one tensor, blocks outermost (see tenon.spec.attention).

    kv_cache: [num_blocks, num_layers, 2, block_size, num_kv_heads, head_size]
    kv_layers[l] = kv_cache[:, l]  ->  [num_blocks, 2, block_size, num_kv_heads, head_size]
"""

from __future__ import annotations

import torch

from tenon.spec.model import KVCacheSpec
from tenon.spec.platform import MemoryInfo

# On the CPU the cache shares memory with everything else; vLLM's CPU backend defaults to a
# fixed space (VLLM_CPU_KVCACHE_SPACE) for the same reason. Tenon takes the smaller of 1 GiB and
# a quarter of the machine's memory unless --kv-cache-memory-bytes says otherwise (1 GiB holds
# about 23,000 tokens of the default model; zeroing it costs under a second here).
CPU_DEFAULT_KV_CACHE_BYTES = 1 << 30


def block_bytes(spec: KVCacheSpec, block_size: int, dtype: torch.dtype) -> int:
    return spec.block_bytes(block_size, torch.empty((), dtype=dtype).element_size())


def num_blocks_for(
    *,
    spec: KVCacheSpec,
    block_size: int,
    dtype: torch.dtype,
    device: torch.device,
    memory: MemoryInfo,
    gpu_memory_utilization: float,
    kv_cache_memory_bytes: int | None,
    num_blocks_override: int | None,
    in_use_bytes: int,
    max_useful_blocks: int,
) -> int:
    """How many blocks the cache gets (the null block included)."""
    if num_blocks_override is not None:
        return num_blocks_override + 1  # the user counts usable blocks; block 0 is reserved
    if kv_cache_memory_bytes is not None:
        budget = kv_cache_memory_bytes
    elif device.type == "cpu":
        budget = min(CPU_DEFAULT_KV_CACHE_BYTES, memory.total_bytes // 4)
    else:
        budget = int(memory.total_bytes * gpu_memory_utilization) - in_use_bytes
    num_blocks = budget // block_bytes(spec, block_size, dtype)
    if num_blocks < 2:
        raise ValueError(
            f"no room for the KV cache: {budget / 2**30:.2f} GiB left for it, one block needs "
            f"{block_bytes(spec, block_size, dtype) / 2**20:.2f} MiB; raise "
            "--gpu-memory-utilization or --kv-cache-memory-bytes, or lower --max-model-len"
        )
    # More blocks than every sequence at full length could use only costs memory and start-up.
    return int(min(num_blocks, max_useful_blocks + 1))


def allocate_kv_cache(
    spec: KVCacheSpec, num_blocks: int, block_size: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The one cache tensor and its per-layer strided views."""
    # Zeroed, not empty: backends that gather whole blocks (torch-sdpa) read slots past a
    # request's length and mask them out, and a masked NaN left in recycled device memory would
    # still poison the output (0 * NaN). Written slots only ever hold finite K/V.
    kv_cache = torch.zeros(
        (num_blocks, spec.num_layers, spec.num_components, block_size, spec.num_kv_heads, spec.head_size),
        dtype=dtype,
        device=device,
    )
    return kv_cache, [kv_cache[:, layer] for layer in range(spec.num_layers)]
