"""The CUDA platform: devices, memory, streams, events and graphs through torch.cuda."""

from __future__ import annotations

from typing import Any

import torch

from tenon.spec.platform import MemoryInfo, Platform


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

    def pin_memory_available(self) -> bool:
        return True
