"""The contract's version and the rule for which plugin versions load.

`API_VERSION` is "MAJOR.MINOR". A plugin declares the version it was written against in every
spec it returns (`api_version`). It is supported when its major equals ours and its minor is not
newer than ours: minor releases only add (and deprecate, keeping the old form working for one
minor version with a warning); a major release may remove what was deprecated. How a deprecated
form is declared and warned about: `tenon.spec.deprecation`.
"""

from __future__ import annotations

API_VERSION = "1.0"


def parse(version: str) -> tuple[int, int]:
    """(major, minor) of "MAJOR.MINOR"; ValueError for anything else."""
    parts = version.split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        raise ValueError(f"api_version must look like 'MAJOR.MINOR', got {version!r}")
    return int(parts[0]), int(parts[1])


def supported_range() -> str:
    """Human-readable range of plugin api_versions this contract accepts."""
    major, minor = parse(API_VERSION)
    return f">={major}.0,<={major}.{minor}"


def unsupported_reason(api_version: str) -> str | None:
    """None when a plugin written against `api_version` works with this contract, else why not."""
    try:
        major, minor = parse(api_version)
    except ValueError as error:
        return str(error)
    our_major, our_minor = parse(API_VERSION)
    if major != our_major or minor > our_minor:
        return (
            f"written for tenon.spec API {api_version}, but this Tenon provides API {API_VERSION} "
            f"and loads plugins for API {supported_range()}"
        )
    return None
