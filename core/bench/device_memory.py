"""Handing device memory back between benchmarks that run in one process.

An 8B model in bf16 is 16 GB and the engine's KV cache takes most of what is left, so our
engine and the HF baseline must not be resident at once: the caller drops its last reference
(after `LLM.shutdown()`, which releases the model and KV cache), then calls this.
"""

from __future__ import annotations

import gc

import torch


def free_device_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def device_memory_in_use_bytes() -> int | None:
    """Bytes the CUDA caching allocator holds for live tensors; None without CUDA."""
    return torch.cuda.memory_allocated() if torch.cuda.is_available() else None
