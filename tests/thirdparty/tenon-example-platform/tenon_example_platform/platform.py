"""A CPU platform for runs that must reproduce bit for bit across machines and batch shapes.

- `--dtype auto` means float32 everywhere (the built-in CPU platform picks bfloat16 where the
  CPU has native bf16, so results would depend on the machine);
- the reference attention backend is preferred: it computes each request alone, so a request's
  tokens do not depend on what else is in the batch (it declares `batch_invariant`).
"""

from __future__ import annotations

import os

import torch

from tenon.spec.platform import MemoryInfo, Platform


class ReproducibleCpuPlatform(Platform):
    name = "example-cpu"
    device_type = "cpu"
    collectives_backend = "gloo"
    preferred_attention_backends = ("reference",)

    def device(self, index: int = 0) -> torch.device:
        return torch.device("cpu")

    def memory_info(self, device: torch.device) -> MemoryInfo:
        page_size_bytes = os.sysconf("SC_PAGE_SIZE")
        return MemoryInfo(
            total_bytes=os.sysconf("SC_PHYS_PAGES") * page_size_bytes,
            free_bytes=os.sysconf("SC_AVPHYS_PAGES") * page_size_bytes,
        )

    def default_dtype(self, checkpoint_dtype: str | None) -> str:
        return "float32"
