"""pluggy markers for the `tenon` project: every hook spec and implementation uses these."""

from __future__ import annotations

import pluggy

PROJECT_NAME = "tenon"
ENTRY_POINT_GROUP = "tenon.plugins"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
