from __future__ import annotations

import random

import pytest

from tenon.engine.block_hash import hash_block_tokens
from tenon.engine.block_pool import BlockPool, FreeBlockQueue, KVCacheBlock


def test_free_queue_removes_from_the_middle_and_appends_at_the_tail() -> None:
    blocks = [KVCacheBlock(block_id) for block_id in range(6)]
    queue = FreeBlockQueue(blocks)
    assert queue.block_ids() == [0, 1, 2, 3, 4, 5]
    queue.remove(blocks[3])
    queue.remove(blocks[0])
    assert queue.block_ids() == [1, 2, 4, 5]
    assert blocks[3].prev_free_block is None and blocks[3].next_free_block is None
    queue.append(blocks[3])
    assert queue.popleft() is blocks[1]
    assert queue.block_ids() == [2, 4, 5, 3]
    assert len(queue) == 4


def test_free_queue_matches_a_list_on_random_operations() -> None:
    rng = random.Random(3)
    blocks = [KVCacheBlock(block_id) for block_id in range(20)]
    queue = FreeBlockQueue(blocks)
    reference = list(range(20))
    taken: list[int] = []
    for _ in range(500):
        operation = rng.choice(["popleft", "remove", "append"])
        if operation == "popleft" and reference:
            taken.append(queue.popleft().block_id)
            assert taken[-1] == reference.pop(0)
        elif operation == "remove" and reference:
            block_id = rng.choice(reference)
            queue.remove(blocks[block_id])
            reference.remove(block_id)
            taken.append(block_id)
        elif operation == "append" and taken:
            block_id = taken.pop(rng.randrange(len(taken)))
            queue.append(blocks[block_id])
            reference.append(block_id)
        assert queue.block_ids() == reference
        assert len(queue) == len(reference)


def test_null_block_is_reserved_and_allocation_takes_the_head() -> None:
    pool = BlockPool(num_blocks=10, enable_caching=True)
    assert pool.null_block.block_id == 0
    assert pool.num_free_blocks == 9
    assert pool.usage == 0.0
    blocks = pool.get_new_blocks(3)
    assert [block.block_id for block in blocks] == [1, 2, 3]
    assert [block.ref_count for block in blocks] == [1, 1, 1]
    assert pool.usage == pytest.approx(3 / 9)
    pool.free_blocks(reversed(blocks))
    assert pool.free_block_queue.block_ids() == [4, 5, 6, 7, 8, 9, 3, 2, 1]
    assert pool.usage == 0.0


def test_eviction_order_and_on_evict_report() -> None:
    evictions: list[list[tuple[bytes, int]]] = []
    pool = BlockPool(num_blocks=6, enable_caching=True, on_evict=evictions.append)
    blocks = pool.get_new_blocks(3)  # 1, 2, 3
    hashes = [hash_block_tokens(None, [block_id]) for block_id in (1, 2, 3)]
    pool.cache_full_blocks(blocks, hashes)
    assert pool.get_cached_block(hashes[1]) is blocks[1]
    pool.free_blocks(reversed(blocks))  # queue: 4, 5, 3, 2, 1
    assert pool.get_cached_block(hashes[0]) is blocks[0], "free blocks stay cached"

    assert [block.block_id for block in pool.get_new_blocks(2)] == [4, 5]
    assert evictions == []
    assert [block.block_id for block in pool.get_new_blocks(2)] == [3, 2]
    assert evictions == [[(hashes[2], 3), (hashes[1], 2)]]
    assert pool.get_cached_block(hashes[2]) is None
    assert blocks[2].block_hash is None
    assert pool.get_cached_block(hashes[0]) is blocks[0]


def test_touch_takes_a_cached_free_block_out_of_the_queue() -> None:
    pool = BlockPool(num_blocks=5, enable_caching=True)
    blocks = pool.get_new_blocks(2)
    block_hash = hash_block_tokens(None, [7, 7])
    pool.cache_full_blocks(blocks[:1], [block_hash])
    pool.free_blocks(reversed(blocks))
    assert pool.free_block_queue.block_ids() == [3, 4, 2, 1]
    hit = pool.get_cached_block(block_hash)
    assert hit is blocks[0]
    pool.touch([hit])
    pool.touch([hit])
    assert hit.ref_count == 2
    assert pool.free_block_queue.block_ids() == [3, 4, 2]
    pool.free_blocks([hit])
    assert pool.free_block_queue.block_ids() == [3, 4, 2]
    pool.free_blocks([hit])
    assert pool.free_block_queue.block_ids() == [3, 4, 2, 1]


def test_duplicate_hash_keeps_the_first_block() -> None:
    pool = BlockPool(num_blocks=5, enable_caching=True)
    first, second = pool.get_new_blocks(2)
    block_hash = hash_block_tokens(None, [1, 2])
    pool.cache_full_blocks([first], [block_hash])
    pool.cache_full_blocks([second], [block_hash])
    assert pool.get_cached_block(block_hash) is first
    assert second.block_hash is None


def test_no_caching_mode_never_caches() -> None:
    pool = BlockPool(num_blocks=4, enable_caching=False)
    blocks = pool.get_new_blocks(1)
    block_hash = hash_block_tokens(None, [1])
    pool.cache_full_blocks(blocks, [block_hash])
    assert pool.get_cached_block(block_hash) is None


def test_reset_prefix_cache_only_when_nothing_is_in_use() -> None:
    pool = BlockPool(num_blocks=4, enable_caching=True)
    blocks = pool.get_new_blocks(1)
    block_hash = hash_block_tokens(None, [1])
    pool.cache_full_blocks(blocks, [block_hash])
    assert pool.reset_prefix_cache() is False
    assert pool.get_cached_block(block_hash) is blocks[0]
    pool.free_blocks(blocks)
    assert pool.reset_prefix_cache() is True
    assert pool.get_cached_block(block_hash) is None
    assert blocks[0].block_hash is None


def test_too_few_blocks_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="needs at least 2"):
        BlockPool(num_blocks=1, enable_caching=True)
