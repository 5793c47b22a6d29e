"""The tiers below the device, in order: device -> CPU -> disk.

    store (write-through):  device block ──copy──> CPU slab ──host copy──> disk writer thread
    lookup:                 leading blocks held by any tier
    load:                   each block from the highest tier that holds it

The disk tier copies from the CPU tier's copy when the CPU tier holds the block (host to host,
so the device is read once), else from the source. A block the CPU tier evicts stays on disk.
Each tier enforces its own capacity (LRU) and counts its own hits, bytes, latency and failures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs
import torch

from tenon.plugins.kv_tiers.chain_tier import ChainTier
from tenon.plugins.kv_tiers.cpu_tier import CPUTier
from tenon.plugins.kv_tiers.stats import TierStats
from tenon.spec.kv_tier import TransferResult


@attrs.define
class _ChainTransfer:
    parts: dict[int, int]  # tier position -> that tier's transfer id, until it finishes
    failed_hashes: list[bytes] = attrs.field(factory=list)


class TierChain:
    """Several `ChainTier`s acting as one store. Same calling rules as `KVTier`, plus `wait`.

    Not thread-safe: called from the engine core's thread (tiers may use their own threads).
    """

    def __init__(self, tiers: Sequence[ChainTier]) -> None:
        if not tiers:
            raise ValueError("a tier chain needs at least one tier")
        self.tiers = list(tiers)
        self._transfers: dict[int, _ChainTransfer] = {}
        self._owner: dict[tuple[int, int], int] = {}  # (tier position, tier's id) -> chain id
        self._finished: list[TransferResult] = []
        self._next_transfer_id = 0

    def lookup(self, block_hashes: Sequence[bytes]) -> int:
        count = 0
        for block_hash in block_hashes:
            if block_hash not in self:
                break
            count += 1
        return count

    def __contains__(self, block_hash: bytes) -> bool:
        return any(block_hash in tier for tier in self.tiers)

    def store(self, items: Sequence[tuple[bytes, torch.Tensor]]) -> int:
        """Store in every tier; returns a transfer id (failed: blocks some tier could not keep)."""
        parts: dict[int, int] = {}
        sources = list(items)
        for position, tier in enumerate(self.tiers):
            parts[position] = tier.store(sources)
            if isinstance(tier, CPUTier):  # lower tiers read the host copy, not the device
                sources = [
                    (block_hash, _or(tier.block_view(block_hash), block))
                    for block_hash, block in sources
                ]
        return self._start(parts, [])

    def load(self, block_hashes: Sequence[bytes], destinations: Sequence[torch.Tensor]) -> int:
        """Load each block from the highest tier holding it; a block no tier holds fails."""
        per_tier: dict[int, tuple[list[bytes], list[torch.Tensor]]] = {}
        missing: list[bytes] = []
        for block_hash, destination in zip(block_hashes, destinations, strict=True):
            position = next(
                (i for i, tier in enumerate(self.tiers) if block_hash in tier), None
            )
            if position is None:
                missing.append(block_hash)
                continue
            hashes, targets = per_tier.setdefault(position, ([], []))
            hashes.append(block_hash)
            targets.append(destination)
        parts = {
            position: self.tiers[position].load(hashes, targets)
            for position, (hashes, targets) in per_tier.items()
        }
        return self._start(parts, missing)

    def poll(self) -> list[TransferResult]:
        for position, tier in enumerate(self.tiers):
            for result in tier.poll():
                chain_id = self._owner.pop((position, result.transfer_id), None)
                if chain_id is None:
                    continue
                transfer = self._transfers[chain_id]
                del transfer.parts[position]
                transfer.failed_hashes.extend(result.failed_hashes)
                if not transfer.parts:
                    self._finish(chain_id)
        finished, self._finished = self._finished, []
        return finished

    def wait(self, transfer_ids: Iterable[int]) -> None:
        """Block until the given transfers have finished (collect them with `poll`)."""
        wanted: dict[int, list[int]] = {}
        for chain_id in transfer_ids:
            transfer = self._transfers.get(chain_id)
            if transfer is not None:
                for position, tier_id in transfer.parts.items():
                    wanted.setdefault(position, []).append(tier_id)
        for position, tier_ids in wanted.items():
            self.tiers[position].wait(tier_ids)

    def tier_stats(self) -> list[TierStats]:
        return [tier.stats() for tier in self.tiers]

    def close(self) -> None:
        for tier in self.tiers:
            tier.close()

    def _start(self, parts: dict[int, int], failed_hashes: list[bytes]) -> int:
        self._next_transfer_id += 1
        chain_id = self._next_transfer_id
        self._transfers[chain_id] = _ChainTransfer(parts=dict(parts), failed_hashes=failed_hashes)
        for position, tier_id in parts.items():
            self._owner[(position, tier_id)] = chain_id
        if not parts:
            self._finish(chain_id)
        return chain_id

    def _finish(self, chain_id: int) -> None:
        transfer = self._transfers.pop(chain_id)
        self._finished.append(
            TransferResult(transfer_id=chain_id, failed_hashes=tuple(transfer.failed_hashes))
        )


def _or(view: torch.Tensor | None, fallback: torch.Tensor) -> torch.Tensor:
    return fallback if view is None else view
