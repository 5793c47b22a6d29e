"""What a tier needs beyond `KVTier` to sit in the offloading chain."""

from __future__ import annotations

import abc
from collections.abc import Iterable

from tenon.plugins.kv_tiers.stats import TierStats
from tenon.spec.kv_tier import KVTier


class ChainTier(KVTier):
    """A `KVTier` the chain can wait on, ask about single blocks, report and close."""

    name: str = "tier"

    @abc.abstractmethod
    def __contains__(self, block_hash: bytes) -> bool:
        """Whether the tier holds the block now (a later load may still fail)."""

    @abc.abstractmethod
    def wait(self, transfer_ids: Iterable[int]) -> None:
        """Block until the given transfers have finished (their results stay for `poll`)."""

    @abc.abstractmethod
    def stats(self) -> TierStats:
        """Totals since the tier was built."""

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Finish queued work and release threads; the tier is unusable afterwards."""
