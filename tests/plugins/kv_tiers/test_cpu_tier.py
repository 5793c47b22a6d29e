"""The CPU tier: exact round trips in every layout, LRU order, misses, counters."""

from __future__ import annotations

import pytest
import torch

from tenon.plugins.kv_tiers.cpu_tier import CPUTier
from tests.plugins.kv_tiers.kv_blocks import block_hash, nbytes, random_blocks


def make_tier(shape: tuple[int, ...], num_blocks: int, dtype: torch.dtype = torch.float32) -> CPUTier:
    dtype_name = str(dtype).removeprefix("torch.")
    # A few spare bytes, less than a block: capacity is whole blocks.
    capacity = num_blocks * nbytes(shape, dtype) + nbytes(shape, dtype) // 2
    return CPUTier(capacity_bytes=capacity, block_shape=shape, dtype=dtype_name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_round_trip_is_exact(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    tier = make_tier(shape, 4, dtype)
    assert tier.num_slots == 4
    blocks = random_blocks(3, shape, dtype, seed=1)
    store_id = tier.store(blocks)
    sources = [block.clone() for _, block in blocks]
    for _, block in blocks:
        block.zero_()  # the tier copied before store() returned
    destinations = [torch.full(shape, 7.0, dtype=dtype) for _ in blocks]
    load_id = tier.load([h for h, _ in blocks][::-1], destinations)
    assert [(r.transfer_id, r.failed_hashes) for r in tier.poll()] == [(store_id, ()), (load_id, ())]
    for destination, source in zip(destinations, sources[::-1], strict=True):
        assert torch.equal(destination, source)


def test_lru_eviction_order_and_recency_from_loads() -> None:
    shape = (2, 2, 4, 1, 8)
    tier = make_tier(shape, 3)
    blocks = random_blocks(5, shape)
    a, b, c, d, e = (h for h, _ in blocks)
    tier.store(blocks[:3])
    tier.load([a], [torch.empty(shape)])  # a becomes the most recently used
    tier.store([blocks[3]])  # evicts b, the least recently used
    assert [tier.lookup([h]) for h in (a, b, c, d)] == [1, 0, 1, 1]
    tier.store([blocks[2]])  # re-storing c refreshes it without a copy
    tier.store([blocks[4]])  # evicts a
    assert [tier.lookup([h]) for h in (a, b, c, d, e)] == [0, 0, 1, 1, 1]
    stats = tier.stats()
    assert (stats.num_stored_blocks, stats.num_evicted_blocks, stats.num_hit_blocks) == (5, 2, 1)
    assert stats.used_bytes == 3 * nbytes(shape)


def test_lookup_counts_leading_blocks_only() -> None:
    shape = (1, 2, 2, 1, 4)
    tier = make_tier(shape, 4)
    blocks = random_blocks(3, shape)
    tier.store([blocks[0], blocks[2]])
    hashes = [h for h, _ in blocks]
    assert tier.lookup(hashes) == 1
    assert tier.lookup(hashes[2:]) == 1
    assert tier.lookup([block_hash(99)]) == 0
    assert tier.lookup([]) == 0


def test_missing_block_fails_and_leaves_destination_alone() -> None:
    shape = (1, 2, 2, 1, 4)
    tier = make_tier(shape, 2)
    blocks = random_blocks(1, shape)
    tier.store(blocks)
    tier.poll()
    kept = torch.full(shape, 3.0)
    loaded = torch.empty(shape)
    tier.load([block_hash(42), blocks[0][0]], [kept, loaded])
    [result] = tier.poll()
    assert result.failed_hashes == (block_hash(42),)
    assert torch.equal(kept, torch.full(shape, 3.0))
    assert torch.equal(loaded, blocks[0][1])
    stats = tier.stats()
    assert (stats.num_hit_blocks, stats.num_load_failures, stats.loaded_bytes) == (1, 1, nbytes(shape))
    assert (stats.num_loads, stats.num_stores, stats.stored_bytes) == (1, 1, nbytes(shape))


def test_capacity_below_one_block_is_refused() -> None:
    shape = (2, 2, 4, 1, 8)
    with pytest.raises(ValueError, match="--kv-offloading-size"):
        CPUTier(capacity_bytes=nbytes(shape) - 1, block_shape=shape, dtype="float32")


def test_batch_larger_than_capacity_keeps_the_last_blocks() -> None:
    shape = (1, 2, 2, 1, 4)
    tier = make_tier(shape, 2)
    blocks = random_blocks(5, shape)
    tier.store(blocks)
    assert [tier.lookup([h]) for h, _ in blocks] == [0, 0, 0, 1, 1]
    view = tier.block_view(blocks[4][0])
    assert view is not None and torch.equal(view, blocks[4][1])
