"""The kit's KV tier suite on a plain in-memory tier, and the failures it reports for tiers
that break the contract."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch

from tenon.spec.kv_tier import KVTier, TransferResult
from tenon.testing import KVTierConformance, run_conformance


class DictTier(KVTier):
    """Synchronous, in memory, LRU by store order; each block kept with its sha256."""

    def __init__(self, *, capacity_bytes: int, block_shape: tuple[int, ...], dtype: str) -> None:
        super().__init__(capacity_bytes=capacity_bytes, block_shape=block_shape, dtype=dtype)
        block_bytes = torch.empty(block_shape, dtype=getattr(torch, dtype)).nbytes
        self.max_blocks = capacity_bytes // block_bytes
        self.blocks: OrderedDict[bytes, tuple[torch.Tensor, bytes]] = OrderedDict()
        self.results: list[TransferResult] = []
        self.next_id = 0

    def lookup(self, block_hashes: Sequence[bytes]) -> int:
        count = 0
        for block_hash in block_hashes:
            if block_hash not in self.blocks:
                break
            count += 1
        return count

    def store(self, items: Sequence[tuple[bytes, torch.Tensor]]) -> int:
        for block_hash, block in items:
            copy = block.clone()
            self.blocks[block_hash] = (copy, _digest(copy))
            self._evict()
        return self._finish(())

    def _evict(self) -> None:
        while len(self.blocks) > self.max_blocks:
            self.blocks.popitem(last=False)

    def load(self, block_hashes: Sequence[bytes], destinations: Sequence[torch.Tensor]) -> int:
        failed = []
        for block_hash, destination in zip(block_hashes, destinations, strict=True):
            entry = self.blocks.get(block_hash)
            if entry is None or _digest(entry[0]) != entry[1]:
                failed.append(block_hash)
                continue
            destination.copy_(entry[0])
        return self._finish(tuple(failed))

    def poll(self) -> list[TransferResult]:
        results, self.results = self.results, []
        return results

    def _finish(self, failed: tuple[bytes, ...]) -> int:
        self.next_id += 1
        self.results.append(TransferResult(transfer_id=self.next_id, failed_hashes=failed))
        return self.next_id


def _digest(block: torch.Tensor) -> bytes:
    return hashlib.sha256(block.contiguous().view(torch.uint8).numpy().tobytes()).digest()


class TestDictTier(KVTierConformance):
    tier_class = DictTier

    def damage_stored_block(self, tier: KVTier, folder: Path, block_hash: bytes, how: str) -> None:
        assert isinstance(tier, DictTier)
        block, checksum = tier.blocks[block_hash]
        if how == "delete":
            del tier.blocks[block_hash]
        elif how == "corrupt":
            block.view(-1)[0] += 1.0
        else:  # an in-memory block cannot be cut short; a zeroed tail stands for it
            block.view(-1)[-8:] = 0.0


class AliasingTier(DictTier):
    """Keeps a reference to the caller's tensor instead of a copy."""

    def store(self, items: Sequence[tuple[bytes, torch.Tensor]]) -> int:
        for block_hash, block in items:
            self.blocks[block_hash] = (block, _digest(block))
            self._evict()
        return self._finish(())


class TrustingTier(DictTier):
    """Never checks its checksums, and never evicts."""

    def load(self, block_hashes: Sequence[bytes], destinations: Sequence[torch.Tensor]) -> int:
        for block_hash, destination in zip(block_hashes, destinations, strict=True):
            if block_hash in self.blocks:
                destination.copy_(self.blocks[block_hash][0])
        return self._finish(())

    def store(self, items: Sequence[tuple[bytes, torch.Tensor]]) -> int:
        for block_hash, block in items:
            self.blocks[block_hash] = (block.clone(), b"")
        return self._finish(())


class TestAliasingTierIsCaught(TestDictTier):
    tier_class = AliasingTier


class TestTrustingTierIsCaught(TestDictTier):
    tier_class = TrustingTier


def _failures(suite: type[KVTierConformance]) -> set[str]:
    return {result.name for result in run_conformance(suite, check=False).failed}


def test_broken_tiers_fail_the_checks_they_break() -> None:
    assert _failures(TestAliasingTierIsCaught) == {
        "test_store_copies_before_returning[float32]", "test_store_copies_before_returning[bfloat16]",
    }
    assert _failures(TestTrustingTierIsCaught) == {
        f"{name}[{dtype}]" for dtype in ("float32", "bfloat16")
        for name in ("test_missing_block_fails", "test_capacity_evicts_least_recently_stored")
    } | {
        f"test_damaged_block_fails[{dtype}-{how}]"
        for dtype in ("float32", "bfloat16") for how in ("corrupt", "truncate", "delete")
    }


# The broken tiers run only through run_conformance above, not as pytest classes.
TestAliasingTierIsCaught.__test__ = False  # type: ignore[attr-defined]
TestTrustingTierIsCaught.__test__ = False  # type: ignore[attr-defined]
