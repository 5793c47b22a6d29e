"""The check every real-checkpoint loader runs after `model.load_weights`."""

from __future__ import annotations

from collections.abc import Set
from typing import Any

_MAX_NAMES_SHOWN = 10


def raise_if_unfilled(model: Any, filled_names: Set[str], checkpoint: str) -> None:
    """Raise ValueError naming the model parameters the checkpoint left unset.

    `named_parameters()` lists a shared (tied) parameter once, under its first name, so a tied
    LM head the model fills from the embedding is not reported.
    """
    parameter_names = dict(model.named_parameters())
    missing_names = sorted(name for name in parameter_names if name not in filled_names)
    if not missing_names:
        return
    shown = ", ".join(missing_names[:_MAX_NAMES_SHOWN])
    more = len(missing_names) - _MAX_NAMES_SHOWN
    suffix = f" and {more} more" if more > 0 else ""
    raise ValueError(
        f"checkpoint {checkpoint} left {len(missing_names)} parameter(s) unset: {shown}{suffix}; "
        "check that the checkpoint matches the model architecture in its config"
    )
