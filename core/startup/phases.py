"""Start-up reporting: how long each phase took and what filled each slot, printed as it goes."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

import attrs


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@attrs.define
class StartupLog:
    echo: Callable[[str], None] | None = _stderr
    durations_s: dict[str, float] = attrs.field(factory=dict)
    slots: dict[str, str] = attrs.field(factory=dict)
    notes: list[str] = attrs.field(factory=list)

    def _say(self, line: str) -> None:
        if self.echo is not None:
            self.echo(f"tenon: {line}")

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        elapsed = time.perf_counter() - start
        self.durations_s[name] = elapsed
        self._say(f"[{elapsed:6.2f} s] {name}")

    def slot(self, label: str, chosen: str, why: str) -> None:
        self.slots[label] = chosen
        self._say(f"{label}: {chosen} ({why})")

    def note(self, line: str) -> None:
        self.notes.append(line)
        self._say(line)

    @property
    def total_s(self) -> float:
        return sum(self.durations_s.values())
