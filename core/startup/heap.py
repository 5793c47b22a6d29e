"""Keep the start-up heap out of the garbage collector's way (vLLM does the same).

An engine's start-up leaves a few hundred thousand Python objects that live as long as it does
(torch modules, tokenizer tables, compiled-kernel handles). Each collection of the oldest
generation walks them all: with 3000 requests in flight on the tiny CPU model, full collections
took up to 216 ms each, and on a GPU such a pause leaves the device idle (a device-only profile
of batch-1000 decode steps found one 187 ms gap in 20 steps). `gc.freeze()` moves every object
alive after start-up to a permanent generation that collections skip (the same run: at most
35 ms). `release()` undoes it when an engine shuts down, and at interpreter exit, so that
frozen objects are finalised normally (nanobind reports leaks otherwise).
"""

from __future__ import annotations

import atexit
import gc


def freeze_startup_objects() -> int:
    """Collect once, then freeze everything alive; returns how many objects are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def release() -> None:
    """Return frozen objects to the collector (an engine shut down, or the process ends)."""
    gc.unfreeze()


atexit.register(release)  # unfreezing what was never frozen is a no-op
