"""Whether CUDA is usable in this process: false on CPU-only and on ROCm builds of torch."""

from __future__ import annotations


def is_available() -> bool:
    import torch

    return torch.version.hip is None and torch.cuda.is_available()
