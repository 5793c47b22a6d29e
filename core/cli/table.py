"""Plain-text tables with aligned columns, for terminal output that also pastes into issues."""

from __future__ import annotations

from collections.abc import Sequence


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, indent: int = 2
) -> list[str]:
    """One line per row, columns padded to their widest cell; the last column is not padded."""
    if not rows:
        return [" " * indent + "(none)"]
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append((" " * indent + "  ".join([*cells, str(row[-1])])).rstrip())
    return lines
