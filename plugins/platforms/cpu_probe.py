"""The CPU platform's probe: kept apart from the platform so probing imports nothing else."""

from __future__ import annotations


def is_available() -> bool:
    """A CPU is always there."""
    return True
