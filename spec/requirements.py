"""What the engine needs from a slot, matched against what each plugin declares it can do.

The resolver builds one `Requirements` record from the engine config and asks each candidate's
capabilities for `unmet(requirements)`: an empty tuple means the candidate can fill the slot;
otherwise each string is a reason it cannot, printed by `tenon doctor` and at start-up.
A field left as None is "no requirement".
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs


@attrs.frozen(kw_only=True)
class Requirements:
    device_type: str | None = None  # "cpu", "cuda", "rocm", ...
    dtype: str | None = None  # torch dtype name without "torch.", e.g. "bfloat16"
    head_size: int | None = None
    block_size: int | None = None
    needs_graphs: bool = False  # the runner will capture the slot's work in a device graph
    needs_batch_invariance: bool = False
    sliding_window: bool = False
    architecture: str | None = None  # the HF `architectures[0]` of the model
    quantization: str | None = None  # the checkpoint's quantization method, e.g. "fp8"
    load_format: str | None = None  # "safetensors", "gguf", "dummy"
    speculative_method: str | None = None  # "ngram", "eagle", ...
    kv_medium: str | None = None  # "cpu", "disk", "remote"
    kv_role: str | None = None  # "kv_producer", "kv_consumer", "kv_both"
    op: str | None = None  # a kernel op name from tenon.spec.ops.OP_NAMES


def check_member(label: str, value: object, allowed: Iterable[object] | None) -> tuple[str, ...]:
    """A one-reason tuple when `value` is required and `allowed` (None: anything) lacks it."""
    if value is None or allowed is None:
        return ()
    allowed = tuple(allowed)
    if value in allowed:
        return ()
    shown = ", ".join(str(a) for a in allowed) or "none"
    return (f"{label} {value} not supported (supports: {shown})",)


def check_flag(label: str, needed: bool, supported: bool) -> tuple[str, ...]:
    """A one-reason tuple when a feature is needed and not supported."""
    return (f"does not support {label}",) if needed and not supported else ()
