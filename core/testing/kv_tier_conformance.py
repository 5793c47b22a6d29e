"""The KV tier suite: a `KVTier` storing and loading random blocks by hash.

    from tenon.testing import KVTierConformance

    class TestMyTier(KVTierConformance):
        tier_class = MyTier
        spec = MY_SPEC                                   # optional: target and persistence

        def make_tier(self, folder, *, capacity_bytes, block_shape, dtype):
            return MyTier(capacity_bytes=capacity_bytes, block_shape=block_shape,
                          dtype=dtype, directory=folder)  # default: the first three only

        def damage_stored_block(self, tier, folder, block_hash, how):
            ...   # optional: "corrupt", "truncate" or "delete" one stored block

Blocks are `[num_layers, 2, block_size, num_kv_heads, head_size]` of random values, hashed
like the engine's (sha256 chain). Checks, in float32 and bfloat16: a store then load gives the
same bytes; `lookup` counts leading blocks only; a block never stored fails to load;
`store` copies before returning (the source may change at once);
capacity holds with LRU eviction; with `damage_stored_block`, a corrupted, truncated or
deleted block is reported failed, never returned as data; a persistent tier (its spec says
`persistent=True`) finds its blocks again after a restart on the same folder.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from tenon.engine.block_hash import hash_block_tokens
from tenon.plugin_host.targets import import_target
from tenon.spec import KVTierSpec
from tenon.spec.kv_tier import KVTier, TransferResult
from tenon.testing.suite import ConformanceSuite

BLOCK_SHAPE = (2, 2, 4, 2, 8)  # [num_layers, 2, block_size, num_kv_heads, head_size]
POLL_TIMEOUT_S = 30.0


def block_hashes(count: int, *, seed: int) -> list[bytes]:
    """A chain of `count` block hashes, as the engine makes them."""
    generator = torch.Generator().manual_seed(seed)
    hashes: list[bytes] = []
    parent = None
    for _ in range(count):
        tokens = torch.randint(0, 1000, (BLOCK_SHAPE[2],), generator=generator).tolist()
        parent = hash_block_tokens(parent, tokens, b"tier-conformance")
        hashes.append(parent)
    return hashes


def random_blocks(count: int, dtype: str, *, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(BLOCK_SHAPE, generator=generator).to(getattr(torch, dtype))
            for _ in range(count)]


def wait_for(tier: KVTier, transfer_id: int, done: dict[int, TransferResult]) -> TransferResult:
    """Poll until `transfer_id` finishes; results of other transfers are kept in `done`."""
    deadline_s = time.monotonic() + POLL_TIMEOUT_S
    while transfer_id not in done:
        for result in tier.poll():
            done[result.transfer_id] = result
        if transfer_id in done:
            break
        assert time.monotonic() < deadline_s, f"transfer {transfer_id} never finished"
        time.sleep(0.001)
    return done.pop(transfer_id)


class KVTierConformance(ConformanceSuite):
    tier_class: ClassVar[type[KVTier]]
    spec: ClassVar[KVTierSpec | None] = None

    def make_tier(
        self, folder: Path, *, capacity_bytes: int, block_shape: tuple[int, ...], dtype: str
    ) -> KVTier:
        """A tier keeping its data in `folder` (if it keeps any on disk)."""
        return self.tier_class(capacity_bytes=capacity_bytes, block_shape=block_shape, dtype=dtype)

    def damage_stored_block(self, tier: KVTier, folder: Path, block_hash: bytes, how: str) -> None:
        """Damage one stored block: "corrupt", "truncate" or "delete" it."""
        pytest.skip("damage_stored_block is not implemented for this tier")

    def parameters(self) -> Mapping[str, Sequence[Any]]:
        return {"dtype": ("float32", "bfloat16"), "how": ("corrupt", "truncate", "delete")}

    def tier(self, folder: Path, dtype: str, num_blocks: int) -> KVTier:
        block_bytes = torch.empty(BLOCK_SHAPE, dtype=getattr(torch, dtype)).nbytes
        return self.make_tier(folder, capacity_bytes=num_blocks * block_bytes,
                              block_shape=BLOCK_SHAPE, dtype=dtype)

    def store_all(self, tier: KVTier, hashes: Sequence[bytes], blocks: Sequence[torch.Tensor]) -> None:
        result = wait_for(tier, tier.store(list(zip(hashes, blocks, strict=True))), {})
        assert result.ok, f"store failed for {len(result.failed_hashes)} blocks"

    def load(self, tier: KVTier, hashes: Sequence[bytes], dtype: str) -> tuple[TransferResult, list[torch.Tensor]]:
        destinations = [torch.full(BLOCK_SHAPE, 7.0, dtype=getattr(torch, dtype)) for _ in hashes]
        result = wait_for(tier, tier.load(list(hashes), destinations), {})
        return result, destinations

    def test_spec_names_this_tier(self) -> None:
        if self.spec is None:
            pytest.skip("no `spec` set on the suite: its target is not checked")
        assert import_target(self.spec.target) is self.tier_class

    def test_store_then_load_round_trip(self, dtype: str) -> None:
        with tempfile.TemporaryDirectory() as folder:
            tier = self.tier(Path(folder), dtype, num_blocks=8)
            hashes, blocks = block_hashes(3, seed=1), random_blocks(3, dtype, seed=2)
            self.store_all(tier, hashes, blocks)
            assert tier.lookup(hashes) == 3
            result, loaded = self.load(tier, hashes, dtype)
            assert result.ok
            for got, want in zip(loaded, blocks, strict=True):
                assert torch.equal(got, want)

    def test_lookup_counts_leading_blocks_only(self, dtype: str) -> None:
        with tempfile.TemporaryDirectory() as folder:
            tier = self.tier(Path(folder), dtype, num_blocks=8)
            hashes, blocks = block_hashes(4, seed=3), random_blocks(4, dtype, seed=4)
            self.store_all(tier, [hashes[0], hashes[1], hashes[3]], [blocks[0], blocks[1], blocks[3]])
            assert tier.lookup(hashes) == 2
            assert tier.lookup(hashes[2:]) == 0
            assert tier.lookup([]) == 0

    def test_missing_block_fails(self, dtype: str) -> None:
        with tempfile.TemporaryDirectory() as folder:
            tier = self.tier(Path(folder), dtype, num_blocks=8)
            hashes, blocks = block_hashes(2, seed=5), random_blocks(2, dtype, seed=6)
            self.store_all(tier, hashes[:1], blocks[:1])
            result, loaded = self.load(tier, hashes, dtype)
            assert hashes[1] in result.failed_hashes and hashes[0] not in result.failed_hashes
            assert torch.equal(loaded[0], blocks[0])

    def test_store_copies_before_returning(self, dtype: str) -> None:
        with tempfile.TemporaryDirectory() as folder:
            tier = self.tier(Path(folder), dtype, num_blocks=8)
            hashes, blocks = block_hashes(2, seed=7), random_blocks(2, dtype, seed=8)
            originals = [block.clone() for block in blocks]
            transfer_id = tier.store(list(zip(hashes, blocks, strict=True)))
            for block in blocks:
                block.fill_(-3.0)  # the device block is reused at once
            assert wait_for(tier, transfer_id, {}).ok
            result, loaded = self.load(tier, hashes, dtype)
            assert result.ok and all(torch.equal(a, b) for a, b in zip(loaded, originals, strict=True))

    def test_capacity_evicts_least_recently_stored(self, dtype: str) -> None:
        with tempfile.TemporaryDirectory() as folder:
            tier = self.tier(Path(folder), dtype, num_blocks=3)
            hashes, blocks = block_hashes(5, seed=9), random_blocks(5, dtype, seed=10)
            for block_hash, block in zip(hashes, blocks, strict=True):
                self.store_all(tier, [block_hash], [block])
            held = [h for h in hashes if tier.lookup([h]) == 1]
            assert held == hashes[2:], f"expected the 3 newest blocks held, got {len(held)}"
            result, loaded = self.load(tier, hashes[2:], dtype)
            assert result.ok and all(torch.equal(a, b) for a, b in zip(loaded, blocks[2:], strict=True))

    def test_damaged_block_fails(self, dtype: str, how: str) -> None:
        with tempfile.TemporaryDirectory() as folder:
            tier = self.tier(Path(folder), dtype, num_blocks=8)
            hashes, blocks = block_hashes(2, seed=11), random_blocks(2, dtype, seed=12)
            self.store_all(tier, hashes, blocks)
            self.damage_stored_block(tier, Path(folder), hashes[1], how)
            result, loaded = self.load(tier, hashes, dtype)
            assert hashes[1] in result.failed_hashes, f"a {how} block was not reported failed"
            assert hashes[0] not in result.failed_hashes and torch.equal(loaded[0], blocks[0])

    def test_persistent_tier_survives_restart(self, dtype: str) -> None:
        if self.spec is None or not self.spec.capabilities.persistent:
            pytest.skip("the tier does not declare persistent=True")
        with tempfile.TemporaryDirectory() as folder:
            hashes, blocks = block_hashes(3, seed=13), random_blocks(3, dtype, seed=14)
            first = self.tier(Path(folder), dtype, num_blocks=8)
            self.store_all(first, hashes, blocks)
            del first
            second = self.tier(Path(folder), dtype, num_blocks=8)
            assert second.lookup(hashes) == 3
            result, loaded = self.load(second, hashes, dtype)
            assert result.ok and all(torch.equal(a, b) for a, b in zip(loaded, blocks, strict=True))
