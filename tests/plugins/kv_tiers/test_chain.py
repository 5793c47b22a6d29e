"""The chain: write-through to every tier, loads from the highest tier holding each block."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tenon.plugins.kv_tiers.chain import TierChain
from tenon.plugins.kv_tiers.cpu_tier import CPUTier
from tenon.plugins.kv_tiers.disk_tier import DiskTier
from tests.plugins.kv_tiers.kv_blocks import block_hash, nbytes, random_blocks

SHAPE = (2, 2, 4, 1, 8)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[DiskTier]:
    tier = DiskTier(capacity_bytes=1 << 20, block_shape=SHAPE, dtype="float32",
                    directory=tmp_path, model="m")
    yield tier
    tier.close()


def run(chain: TierChain, transfer_id: int) -> tuple[bytes, ...]:
    chain.wait([transfer_id])
    results = {result.transfer_id: result for result in chain.poll()}
    return results[transfer_id].failed_hashes


def test_write_through_and_loads_from_the_highest_tier(disk: DiskTier) -> None:
    cpu = CPUTier(capacity_bytes=2 * nbytes(SHAPE), block_shape=SHAPE, dtype="float32")
    chain = TierChain([cpu, disk])
    blocks = random_blocks(4, SHAPE, seed=1)
    hashes = [h for h, _ in blocks]
    assert run(chain, chain.store(blocks)) == ()
    assert [h in cpu for h in hashes] == [False, False, True, True]
    assert [h in disk for h in hashes] == [True, True, True, True]
    assert chain.lookup(hashes + [block_hash(50)]) == 4
    destinations = [torch.empty(SHAPE) for _ in hashes]
    assert run(chain, chain.load(hashes, destinations)) == ()
    assert all(torch.equal(d, b) for d, (_, b) in zip(destinations, blocks, strict=True))
    cpu_stats, disk_stats = chain.tier_stats()
    assert (cpu_stats.tier, cpu_stats.num_hit_blocks, cpu_stats.num_evicted_blocks) == ("cpu", 2, 2)
    assert (disk_stats.tier, disk_stats.num_hit_blocks, disk_stats.num_stored_blocks) == ("disk", 2, 4)
    assert disk_stats.loaded_bytes == 2 * nbytes(SHAPE)


def test_disk_copies_the_cpu_copy_not_the_source(disk: DiskTier) -> None:
    cpu = CPUTier(capacity_bytes=4 * nbytes(SHAPE), block_shape=SHAPE, dtype="float32")
    chain = TierChain([cpu, disk])
    blocks = random_blocks(2, SHAPE, seed=2)
    expected = [block.clone() for _, block in blocks]
    transfer_id = chain.store(blocks)
    for _, block in blocks:
        block.fill_(9.0)  # the device block reused right after the store
    assert run(chain, transfer_id) == ()
    destinations = [torch.empty(SHAPE) for _ in blocks]
    disk_id = disk.load([h for h, _ in blocks], destinations)
    disk.wait([disk_id])
    assert all(torch.equal(d, e) for d, e in zip(destinations, expected, strict=True))


def test_lookup_stops_at_the_first_block_no_tier_holds(disk: DiskTier) -> None:
    cpu = CPUTier(capacity_bytes=4 * nbytes(SHAPE), block_shape=SHAPE, dtype="float32")
    chain = TierChain([cpu, disk])
    blocks = random_blocks(4, SHAPE, seed=3)
    cpu.store([blocks[0]])
    disk.wait([disk.store([blocks[1], blocks[3]])])
    hashes = [h for h, _ in blocks]
    assert chain.lookup(hashes) == 2
    assert chain.lookup(hashes[3:]) == 1


def test_a_block_that_vanished_fails_its_load_only(disk: DiskTier) -> None:
    chain = TierChain([disk])
    blocks = random_blocks(3, SHAPE, seed=4)
    assert run(chain, chain.store(blocks)) == ()
    disk.block_path(blocks[1][0]).unlink()
    destinations = [torch.zeros(SHAPE) for _ in blocks]
    failed = run(chain, chain.load([h for h, _ in blocks] + [block_hash(70)],
                                   destinations + [torch.zeros(SHAPE)]))
    assert failed == (block_hash(70), blocks[1][0])
    assert torch.equal(destinations[0], blocks[0][1]) and torch.equal(destinations[2], blocks[2][1])
    assert torch.equal(destinations[1], torch.zeros(SHAPE))


def test_an_empty_chain_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one tier"):
        TierChain([])
