"""The CUDA platform: devices, memory, streams, events and graphs through torch.cuda."""

from __future__ import annotations

from typing import Any

import torch

from tenon.spec.platform import BatchDefaults, MemoryInfo, Platform, Usage

LARGE_DEVICE_BYTES = 70 * 2**30


def batch_defaults_for(total_bytes: int, device_name: str, usage: Usage) -> BatchDefaults:
    """vLLM's defaults by device: from 70 GiB (H100, H200, ...; not the A100, where a larger token
    budget measured slower in vLLM) 1024 sequences and 16384 tokens a step offline, 8192 for a
    server; smaller cards 256 sequences and 8192 / 2048 tokens."""
    if total_bytes >= LARGE_DEVICE_BYTES and "a100" not in device_name.lower():
        return BatchDefaults(max_num_seqs=1024,
                             max_num_batched_tokens=16384 if usage == "offline" else 8192)
    return BatchDefaults(max_num_seqs=256, max_num_batched_tokens=8192 if usage == "offline" else 2048)


class CudaPlatform(Platform):
    name = "cuda"
    device_type = "cuda"
    collectives_backend = "nccl"
    preferred_attention_backends: tuple[str, ...] = ()

    def __init__(self) -> None:
        # Exact float32 unless a user opts in: TF32 would break float32 parity with references.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    def device(self, index: int = 0) -> torch.device:
        return torch.device("cuda", index)

    def memory_info(self, device: torch.device) -> MemoryInfo:
        free_bytes, total_bytes = torch.cuda.mem_get_info(device)
        return MemoryInfo(total_bytes=total_bytes, free_bytes=free_bytes)

    def synchronize(self, device: torch.device) -> None:
        torch.cuda.synchronize(device)

    def create_stream(self, device: torch.device) -> Any:
        return torch.cuda.Stream(device=device)

    def create_event(self, device: torch.device) -> Any:
        return torch.cuda.Event()

    def create_graph(self) -> Any:
        from tenon_cuda.graphs import CudaGraph

        return CudaGraph()

    def batch_defaults(self, device: torch.device, usage: Usage) -> BatchDefaults:
        properties = torch.cuda.get_device_properties(device)
        return batch_defaults_for(properties.total_memory, properties.name, usage)

    def pin_memory_available(self) -> bool:
        return True
