"""The disk tier: exact round trips, restart, LRU by capacity, and every failure it must catch
(corrupted, truncated, deleted, foreign and half-written files, a full disk)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tenon.plugins.kv_tiers import disk_files
from tenon.plugins.kv_tiers.disk_format import MAGIC, file_bytes
from tenon.plugins.kv_tiers.disk_tier import DiskTier
from tests.plugins.kv_tiers.kv_blocks import block_hash, nbytes, random_blocks

SHAPE = (2, 2, 4, 2, 8)
MODEL = "tiny-llama"


class Tiers:
    """Builds disk tiers over one directory and closes them all at the end of the test."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.built: list[DiskTier] = []

    def __call__(self, num_blocks: int = 8, shape: tuple[int, ...] = SHAPE,
                 dtype: str = "float32", model: str = MODEL, **options: object) -> DiskTier:
        capacity_bytes = num_blocks * nbytes(shape, getattr(torch, dtype))
        tier = DiskTier(capacity_bytes=capacity_bytes, block_shape=shape, dtype=dtype,
                        directory=self.directory, model=model, **options)
        self.built.append(tier)
        return tier


def file_bytes_for(shape: tuple[int, ...], dtype: str, model: str) -> int:
    from tenon.plugins.kv_tiers.disk_format import BlockIdentity
    from tenon.spec.attention import KV_CACHE_LAYOUT

    identity = BlockIdentity(model=model, dtype=dtype, block_shape=shape, layout=KV_CACHE_LAYOUT)
    return file_bytes(identity, block_hash(0), nbytes(shape, getattr(torch, dtype)))


@pytest.fixture
def tiers(tmp_path: Path) -> Iterator[Tiers]:
    factory = Tiers(tmp_path / "kv")
    yield factory
    for tier in factory.built:
        tier.close()


def stored(tier: DiskTier, blocks: list[tuple[bytes, torch.Tensor]]) -> None:
    transfer_id = tier.store(blocks)
    tier.wait([transfer_id])


def load(tier: DiskTier, hashes: list[bytes], shape: tuple[int, ...] = SHAPE,
         dtype: torch.dtype = torch.float32) -> tuple[list[torch.Tensor], tuple[bytes, ...]]:
    destinations = [torch.full(shape, -5.0, dtype=dtype) for _ in hashes]
    transfer_id = tier.load(hashes, destinations)
    tier.wait([transfer_id])
    [result] = [r for r in tier.poll() if r.transfer_id == transfer_id]
    return destinations, result.failed_hashes


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_round_trip_is_exact(tiers: Tiers, shape: tuple[int, ...], dtype: str) -> None:
    tier = tiers(shape=shape, dtype=dtype)
    blocks = random_blocks(3, shape, getattr(torch, dtype), seed=2)
    sources = [block.clone() for _, block in blocks]
    transfer_id = tier.store(blocks)
    for _, block in blocks:
        block.zero_()  # the tier copied before store() returned
    tier.wait([transfer_id])
    assert tier.lookup([h for h, _ in blocks]) == 3
    destinations, failed = load(tier, [h for h, _ in blocks], shape, getattr(torch, dtype))
    assert failed == ()
    for destination, source in zip(destinations, sources, strict=True):
        assert torch.equal(destination, source)
    path = tier.block_path(blocks[0][0])
    assert path.read_bytes()[:8] == MAGIC
    assert path.stat().st_size == file_bytes_for(shape, dtype, MODEL)


def test_survives_a_restart(tiers: Tiers) -> None:
    blocks = random_blocks(4, SHAPE, seed=3)
    first = tiers()
    stored(first, blocks)
    first.close()
    second = tiers()
    assert second.lookup([h for h, _ in blocks]) == 4
    assert second.stats().used_bytes == 4 * nbytes(SHAPE)
    destinations, failed = load(second, [h for h, _ in blocks])
    assert failed == ()
    assert all(torch.equal(d, b) for d, (_, b) in zip(destinations, blocks, strict=True))


def test_other_models_and_layouts_are_not_visible(tiers: Tiers) -> None:
    blocks = random_blocks(2, SHAPE, seed=4)
    stored(tiers(), blocks)
    hashes = [h for h, _ in blocks]
    assert tiers(model="another-model").lookup(hashes) == 0
    assert tiers(shape=(2, 2, 4, 1, 16)).lookup(hashes) == 0
    assert tiers(dtype="bfloat16").lookup(hashes) == 0
    assert tiers().lookup(hashes) == 2


def test_lru_eviction_deletes_the_oldest_files(tiers: Tiers) -> None:
    tier = tiers(num_blocks=2)
    blocks = random_blocks(3, SHAPE, seed=5)
    stored(tier, blocks[:2])
    load(tier, [blocks[0][0]])  # block 0 becomes the most recently used
    stored(tier, blocks[2:])  # evicts block 1
    assert [tier.lookup([h]) for h, _ in blocks] == [1, 0, 1]
    assert not tier.block_path(blocks[1][0]).exists()
    stats = tier.stats()
    assert (stats.num_stored_blocks, stats.num_evicted_blocks) == (3, 1)
    assert stats.used_bytes == 2 * nbytes(SHAPE)


def test_corrupted_payload_fails_the_load_and_is_deleted(tiers: Tiers) -> None:
    tier = tiers()
    blocks = random_blocks(2, SHAPE, seed=6)
    stored(tier, blocks)
    path = tier.block_path(blocks[1][0])
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40  # one bit of one K/V value
    path.write_bytes(bytes(data))
    destinations, failed = load(tier, [h for h, _ in blocks])
    assert failed == (blocks[1][0],)
    assert torch.equal(destinations[0], blocks[0][1])
    assert torch.equal(destinations[1], torch.full(SHAPE, -5.0))  # never written
    assert not path.exists()
    assert tier.lookup([h for h, _ in blocks]) == 1
    assert (tier.stats().num_load_failures, tier.stats().num_hit_blocks) == (1, 1)


def test_truncated_and_deleted_files_fail_the_load(tiers: Tiers) -> None:
    tier = tiers()
    blocks = random_blocks(3, SHAPE, seed=7)
    stored(tier, blocks)
    truncated = tier.block_path(blocks[0][0])
    truncated.write_bytes(truncated.read_bytes()[:-100])
    tier.block_path(blocks[1][0]).unlink()
    destinations, failed = load(tier, [h for h, _ in blocks])
    assert failed == (blocks[0][0], blocks[1][0])
    assert torch.equal(destinations[2], blocks[2][1])
    assert tier.stats().num_load_failures == 2
    assert tier.lookup([blocks[2][0]]) == 1 and tier.lookup([blocks[0][0]]) == 0


def test_restart_trusts_only_whole_files(tiers: Tiers) -> None:
    blocks = random_blocks(4, SHAPE, seed=8)
    first = tiers()
    stored(first, blocks)
    first.close()
    paths = [first.block_path(h) for h, _ in blocks]
    paths[0].write_bytes(paths[0].read_bytes()[:-1])  # truncated: the size check catches it
    paths[1].write_bytes(b"not a block")  # bad magic
    os.replace(paths[2], paths[3])  # block 2's file under block 3's name: meta mismatch
    temp = paths[0].with_name("." + paths[0].name + ".123.0.tmp")  # a crash mid-store
    temp.write_bytes(b"half")
    second = tiers()
    assert [second.lookup([h]) for h, _ in blocks] == [0, 0, 0, 0]
    assert second.stats().num_invalid_files == 3
    assert second.stats().used_bytes == 0
    assert not temp.exists() and not paths[0].exists()


def test_corruption_that_keeps_the_size_is_caught_at_load_after_restart(tiers: Tiers) -> None:
    blocks = random_blocks(2, SHAPE, seed=9)
    first = tiers()
    stored(first, blocks)
    first.close()
    path = first.block_path(blocks[0][0])
    data = bytearray(path.read_bytes())
    data[len(data) // 2 + 40] ^= 0xFF
    path.write_bytes(bytes(data))
    second = tiers()
    assert second.lookup([h for h, _ in blocks]) == 2  # headers and sizes are fine
    destinations, failed = load(second, [h for h, _ in blocks])
    assert failed == (blocks[0][0],)
    assert torch.equal(destinations[1], blocks[1][1])
    assert second.stats().num_load_failures == 1


def test_full_disk_skips_the_store_and_counts_it(tiers: Tiers, monkeypatch: pytest.MonkeyPatch) -> None:
    tier = tiers()
    blocks = random_blocks(3, SHAPE, seed=10)
    real_write = disk_files.write_file

    def write_file(path: Path, parts: list, *, fsync: bool) -> None:
        real_write(path, parts[:1], fsync=fsync)  # the header made it, then the disk filled
        raise OSError(errno.ENOSPC, "No space left on device")

    stored(tier, blocks[:1])
    monkeypatch.setattr(disk_files, "write_file", write_file)
    transfer_id = tier.store(blocks[1:])
    tier.wait([transfer_id])
    [result] = [r for r in tier.poll() if r.transfer_id == transfer_id]
    assert result.failed_hashes == (blocks[1][0], blocks[2][0])
    stats = tier.stats()
    assert (stats.num_store_failures, stats.num_full_skips, stats.num_stored_blocks) == (2, 2, 1)
    assert [tier.lookup([h]) for h, _ in blocks] == [1, 0, 0]
    assert sorted(p.name for p in tier.root.rglob("*") if p.is_file()) == [
        tier.block_path(blocks[0][0]).name
    ]


def test_other_io_errors_fail_the_store_without_counting_full(
    tiers: Tiers, monkeypatch: pytest.MonkeyPatch
) -> None:
    tier = tiers()

    def write_file(path: Path, parts: list, *, fsync: bool) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(disk_files, "write_file", write_file)
    stored(tier, random_blocks(1, SHAPE))
    assert (tier.stats().num_store_failures, tier.stats().num_full_skips) == (1, 0)


def test_capacity_below_one_block_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--kv-offloading-disk-size"):
        DiskTier(capacity_bytes=nbytes(SHAPE) - 1, block_shape=SHAPE, dtype="float32",
                 directory=tmp_path, model=MODEL)


def test_writer_backlog_beyond_the_bound_drops_stores(tiers: Tiers) -> None:
    tier = tiers(max_pending_bytes=nbytes(SHAPE))
    blocks = random_blocks(3, SHAPE, seed=11)
    transfer_id = tier.store(blocks)
    tier.wait([transfer_id])
    [result] = tier.poll()
    assert result.failed_hashes == (blocks[1][0], blocks[2][0])
    assert tier.lookup([blocks[0][0]]) == 1
    assert tier.stats().num_store_failures == 2


def test_shrunk_capacity_evicts_at_start(tiers: Tiers) -> None:
    blocks = random_blocks(3, SHAPE, seed=12)
    first = tiers(num_blocks=4)
    for item in blocks:  # one at a time, so the modification times are ordered
        stored(first, [item])
        os.utime(first.block_path(item[0]), ns=(0, 10**9 * (1 + blocks.index(item))))
    first.close()
    second = tiers(num_blocks=2)
    assert [second.lookup([h]) for h, _ in blocks] == [0, 1, 1]
    assert second.stats().num_evicted_blocks == 1


def test_lookup_ignores_blocks_not_yet_written(tiers: Tiers) -> None:
    tier = tiers()
    assert tier.lookup([block_hash(1)]) == 0
    destinations, failed = load(tier, [block_hash(1)])
    assert failed == (block_hash(1),)
    assert tier.stats().num_load_failures == 1
