"""The probe: a cheap check, imported on its own, that the platform is usable here."""

from __future__ import annotations

import os


def is_available() -> bool:
    """Usable wherever the host reports its memory (every POSIX system)."""
    return hasattr(os, "sysconf") and os.sysconf("SC_PAGE_SIZE") > 0
