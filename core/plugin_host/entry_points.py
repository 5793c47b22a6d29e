"""What the host needs from an entry point, and an in-process one for tests and embedders.

`importlib.metadata.EntryPoint` satisfies `EntryPointLike`. `StaticEntryPoint` publishes an
object that is already in memory under a name and a distribution, so tests (and programs that
embed Tenon) register plugins through exactly the path installed packages take.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

import attrs

TENON_DISTRIBUTION = "tenon"


class DistributionLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...


class EntryPointLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def dist(self) -> DistributionLike | None: ...

    def load(self) -> Any: ...


def normalize_distribution_name(name: str) -> str:
    """PEP 503 normalisation: "Tenon_Example.Good" and "tenon-example-good" are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_builtin(entry_point: EntryPointLike) -> bool:
    """Published by the `tenon` distribution itself (always loaded, whatever the environment)."""
    dist = entry_point.dist
    return dist is not None and normalize_distribution_name(dist.name) == TENON_DISTRIBUTION


@attrs.frozen(kw_only=True)
class StaticDistribution:
    name: str
    version: str


@attrs.frozen(kw_only=True)
class StaticEntryPoint:
    """An entry point whose `load()` calls `loader` (which may raise, like a failing import)."""

    name: str
    loader: Callable[[], Any]
    distribution: str
    version: str = "0.0.0"
    value: str | None = None

    @property
    def dist(self) -> StaticDistribution:
        return StaticDistribution(name=self.distribution, version=self.version)

    def load(self) -> Any:
        return self.loader()
