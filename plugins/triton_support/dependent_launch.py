"""Programmatic dependent launch (PDL) for the kernels of a decode step.

Between two kernels on one stream the GPU normally drains the first grid, then launches the
second, whose programs then wait on their first loads: a few microseconds per boundary in which
memory sits idle. A one-token decode step is about 200 such kernels (six a layer), so the gaps
are a few percent of the step. With PDL (CUDA, compute capability 9.0 and later) a kernel launched
with `launch_pdl=True` may start while the kernel before it is still running:

    kernel A (any kind)      |==========|
    kernel B (PDL)              |prologue..wait|=========|      B's programs start once every
                                 weights only  ^ A done and     program of A has started (A
                                               its writes       triggers early) or A ends
                                               visible

The rules every kernel launched this way keeps, so it is correct whatever runs before it:
- it calls `gdc_launch_dependents` (lets the next kernel start early) and `gdc_wait` in every
  program, and reads nothing another kernel writes, and writes nothing, before `gdc_wait`
  returns. Loads before the wait touch only model weights, which no kernel of a step writes;
- so a kernel that ends has waited for the one before it, and, by induction, for everything
  earlier on the stream.

`gdc_wait` is also what makes a write after the previous kernel's reads safe (the caching
allocator may hand the previous kernel's freed input to this kernel as its output).

CUDA graphs keep the dependency when they capture such launches. Tenon's kernels take a
`DEPENDENT_LAUNCH` constexpr and the wrapper passes `dependent_launch_options(device)`; the
switch is `dependent_launch(device)`, which is false on the CPU, under Triton's interpreter (it has no
inline assembly), on ROCm, before Hopper, on a Triton without `launch_pdl`, and when
TENON_DEPENDENT_LAUNCH=0 (for A/B timing).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import torch

ENV_SWITCH = "TENON_DEPENDENT_LAUNCH"
MIN_CAPABILITY = 9  # Hopper: griddepcontrol


def dependent_launch(device: torch.device) -> bool:
    """Whether kernels for `device` launch with programmatic dependent launch."""
    if device.type != "cuda" or os.environ.get(ENV_SWITCH, "1") == "0":
        return False
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        return False
    index = device.index if device.index is not None else torch.cuda.current_device()
    return _device_supports(index)


@functools.cache
def _device_supports(index: int) -> bool:
    if torch.version.hip is not None:
        return False
    if torch.cuda.get_device_capability(index)[0] < MIN_CAPABILITY:
        return False
    return _triton_supports()


@functools.cache
def _triton_supports() -> bool:
    """Triton exposes the wait and trigger to kernels and `launch_pdl` to launches (3.4 on)."""
    try:
        import dataclasses

        from triton.backends.nvidia.compiler import CUDAOptions
        from triton.language.extra import cuda as triton_cuda
    except ImportError:
        return False
    has_option = any(field.name == "launch_pdl" for field in dataclasses.fields(CUDAOptions))
    return has_option and hasattr(triton_cuda, "gdc_wait")


def dependent_launch_options(device: torch.device) -> dict[str, Any]:
    """Keyword arguments for launching a kernel that takes the DEPENDENT_LAUNCH constexpr on
    `device`: the constexpr, and `launch_pdl` only where it is on, so Triton versions and the
    interpreter without that option never see it."""
    enabled = dependent_launch(device)
    return {"DEPENDENT_LAUNCH": True, "launch_pdl": True} if enabled else {"DEPENDENT_LAUNCH": False}
