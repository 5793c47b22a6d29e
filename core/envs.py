"""Every TENON_* environment variable the project reads, in one place.

Unknown TENON_* variables are rejected at start-up (a misspelled variable silently doing nothing
is worse than an error), so a new variable must be declared here.
"""

from __future__ import annotations

import os
from pathlib import Path

KNOWN_VARIABLES: dict[str, str] = {
    "TENON_PLUGINS": "comma-separated allowlist of third-party plugin entry-point names",
    "TENON_DISABLE_PLUGIN_AUTOLOAD": "1 turns off third-party plugin discovery",
    "TENON_CACHE_DIR": "where converted tokenizers and other caches live (default ~/.cache/tenon)",
    "TENON_LOG_LEVEL": "logging level for the tenon logger (default INFO)",
}


def cache_dir() -> Path:
    """The root of Tenon's on-disk caches (created on first use)."""
    root = os.environ.get("TENON_CACHE_DIR") or str(Path.home() / ".cache" / "tenon")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def unknown_variables(environ: dict[str, str] | None = None) -> list[str]:
    """TENON_* names set in the environment that Tenon does not know."""
    env = os.environ if environ is None else environ
    return sorted(name for name in env if name.startswith("TENON_") and name not in KNOWN_VARIABLES)


def check_environment(environ: dict[str, str] | None = None) -> None:
    """Raise if an unknown TENON_* variable is set, naming the known ones."""
    unknown = unknown_variables(environ)
    if unknown:
        known = ", ".join(sorted(KNOWN_VARIABLES))
        raise ValueError(f"unknown environment variable(s) {', '.join(unknown)}; Tenon reads only: {known}")
