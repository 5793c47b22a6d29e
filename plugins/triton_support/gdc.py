"""Triton helpers for the `dependent_launch` rules: call `start_dependents_then_wait` once per
program, after weight-only loads and before anything else touches global memory."""

# mypy: disable-error-code="no-untyped-def"

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def start_dependents_then_wait(DEPENDENT_LAUNCH: tl.constexpr):
    """Let the next kernel launch early, then wait until the kernel before this one has ended
    and its writes are visible. Nothing without DEPENDENT_LAUNCH (and the interpreter never
    sees the inline assembly)."""
    if DEPENDENT_LAUNCH:
        tl.extra.cuda.gdc_launch_dependents()
        tl.extra.cuda.gdc_wait()
