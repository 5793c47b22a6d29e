"""Per-step generators for seeded requests.

A seeded request must draw the same tokens whether it runs alone, in any batch, or is preempted and
recomputed. So its generator is never carried between steps: each step makes a fresh one seeded
from (request seed, number of output tokens so far), mixed by a stable function. Python's `hash()`
is salted per process and would break this across processes, so it is not used.
"""

from __future__ import annotations

import torch

_MASK_64 = (1 << 64) - 1


def splitmix64(value: int) -> int:
    """One round of SplitMix64 (Steele et al.): a stable, well-mixed 64-bit finaliser."""
    z = (value + 0x9E3779B97F4A7C15) & _MASK_64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK_64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK_64
    return z ^ (z >> 31)


def mix_seed(seed: int, step: int) -> int:
    """A 64-bit seed for `step` of a request seeded with `seed`, in [0, 2**64)."""
    # Mixing the seed first keeps nearby (seed, step) pairs, e.g. (1, 2) and (2, 1), apart.
    return splitmix64(splitmix64(seed & _MASK_64) ^ (step & _MASK_64))


def make_step_generator(seed: int, step: int, device: torch.device | str) -> torch.Generator:
    """A generator on `device` for the draw that produces output token number `step` (0-based)."""
    generator = torch.Generator(device=device)
    generator.manual_seed(mix_seed(seed, step))
    return generator
