"""Filling a result record's `baseline` and `limit` once the runs they compare with are done.

A benchmark that runs alone writes placeholders (`no_baseline()`, `limit: None`); the script that
runs ours, the baseline and the limit in one call fills them in, so every number it reports is
a ratio to something measured in the same call on the same card.
"""

from __future__ import annotations

from typing import Any


def no_baseline() -> dict[str, Any]:
    return {"name": None, "value": None, "ratio": None}


def with_comparisons(record: dict[str, Any], *, baseline_name: str | None, baseline_value: float | None,
                     limit: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of `record` with its baseline (and our ratio to it) and its limit (and fraction)."""
    value = float(record["value"])
    baseline = {
        "name": baseline_name,
        "value": None if baseline_value is None else round(baseline_value, 3),
        "ratio": None if not baseline_value else round(value / baseline_value, 3),
    }
    fraction = None if limit is None else round(value / float(limit["value"]), 4)
    return {**record, "baseline": baseline, "limit": limit, "fraction_of_limit": fraction}
