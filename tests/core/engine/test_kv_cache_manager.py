from __future__ import annotations

from collections.abc import Callable

import pytest

from tenon.engine.kv_cache_manager import KVCacheManager, NewBlocks
from tenon.engine.request import Request

RequestFactory = Callable[..., Request]


def admit(manager: KVCacheManager, request: Request) -> NewBlocks | None:
    """Look up the prefix cache and allocate the whole remaining prompt, as the scheduler does."""
    computed_blocks, num_computed_tokens = manager.get_computed_blocks(request)
    new_blocks = manager.allocate_slots(
        request, request.num_tokens - num_computed_tokens, computed_blocks
    )
    if new_blocks is not None:
        request.num_computed_tokens = request.num_tokens
    return new_blocks


def test_allocation_gives_exact_block_ids(request_factory: RequestFactory) -> None:
    manager = KVCacheManager(num_blocks=12, block_size=4, enable_caching=True)
    first = request_factory("a", list(range(10)))
    assert admit(manager, first) == NewBlocks(block_ids=(1, 2, 3))
    second = request_factory("b", list(range(50, 55)))
    assert admit(manager, second) == NewBlocks(block_ids=(4, 5))
    assert manager.get_block_ids("a") == [1, 2, 3]
    assert manager.num_free_blocks == 6
    assert manager.usage == pytest.approx(5 / 11)


def test_decode_gets_a_new_block_only_when_crossing_a_boundary(
    request_factory: RequestFactory,
) -> None:
    manager = KVCacheManager(num_blocks=12, block_size=4, enable_caching=True)
    request = request_factory("a", list(range(6)))
    admit(manager, request)
    gained = []
    for token_id in range(100, 105):
        request.append_output_token_ids(token_id)
        new_blocks = manager.allocate_slots(request, 1)
        assert new_blocks is not None
        gained.append(new_blocks.block_ids)
        request.num_computed_tokens += 1
    # Tokens 6, 7 fit block 2; token 8 opens block 3; 9, 10 fit it.
    assert gained == [(), (), (3,), (), ()]
    assert manager.get_block_ids("a") == [1, 2, 3]


def test_prefix_hit_shares_three_blocks(request_factory: RequestFactory) -> None:
    manager = KVCacheManager(num_blocks=12, block_size=4, enable_caching=True)
    shared = list(range(12))
    first = request_factory("a", [*shared, 90, 91])
    assert admit(manager, first) == NewBlocks(block_ids=(1, 2, 3, 4))
    second = request_factory("b", [*shared, 80])
    computed_blocks, num_computed_tokens = manager.get_computed_blocks(second)
    assert [block.block_id for block in computed_blocks] == [1, 2, 3]
    assert num_computed_tokens == 12
    assert manager.allocate_slots(second, 1, computed_blocks) == NewBlocks(block_ids=(1, 2, 3, 5))
    assert [manager.block_pool.blocks[i].ref_count for i in range(1, 6)] == [2, 2, 2, 1, 1]
    assert manager.prefix_cache_queries_tokens == 14 + 13
    assert manager.prefix_cache_hits_tokens == 12

    manager.free(first)
    manager.free(second)
    assert all(block.ref_count == 0 for block in manager.block_pool.blocks)
    assert manager.usage == 0.0


def test_full_prompt_hit_leaves_the_last_token_to_compute(
    request_factory: RequestFactory,
) -> None:
    manager = KVCacheManager(num_blocks=12, block_size=4, enable_caching=True)
    first = request_factory("a", list(range(13)))
    admit(manager, first)
    manager.free(first)
    # 12 identical tokens: three full cached blocks, but at most (12 - 1) // 4 = 2 count.
    same_12 = request_factory("b", list(range(12)))
    blocks, num_computed_tokens = manager.get_computed_blocks(same_12)
    assert ([block.block_id for block in blocks], num_computed_tokens) == ([1, 2], 8)
    same_13 = request_factory("c", list(range(13)))
    blocks, num_computed_tokens = manager.get_computed_blocks(same_13)
    assert ([block.block_id for block in blocks], num_computed_tokens) == ([1, 2, 3], 12)


def test_hit_on_free_cached_blocks_and_tail_first_eviction(
    request_factory: RequestFactory,
) -> None:
    evictions: list[list[tuple[bytes, int]]] = []
    manager = KVCacheManager(
        num_blocks=12, block_size=4, enable_caching=True, on_evict=evictions.append
    )
    first = request_factory("a", list(range(17)))  # blocks 1..5, four full and cached
    admit(manager, first)
    manager.free(first)
    assert manager.block_pool.free_block_queue.block_ids() == [6, 7, 8, 9, 10, 11, 5, 4, 3, 2, 1]

    # Needs 9 fresh blocks: the 6 never-used ones, then 5 (uncached) and 4, 3 (evicted).
    filler = request_factory("f", list(range(500, 536)))
    assert admit(manager, filler) == NewBlocks(block_ids=(6, 7, 8, 9, 10, 11, 5, 4, 3))
    assert evictions == [[(first.block_hashes[3], 4), (first.block_hashes[2], 3)]]

    again = request_factory("b", list(range(17)))
    blocks, num_computed_tokens = manager.get_computed_blocks(again)
    assert ([block.block_id for block in blocks], num_computed_tokens) == ([1, 2], 8)
    assert manager.allocate_slots(again, 9, blocks) is None, "needs 3 fresh blocks, 0 free"
    assert [manager.block_pool.blocks[i].ref_count for i in (1, 2)] == [0, 0]
    manager.free(filler)
    assert manager.allocate_slots(again, 9, blocks) == NewBlocks(block_ids=(1, 2, 3, 4, 5))


def test_allocation_failure_changes_nothing(request_factory: RequestFactory) -> None:
    manager = KVCacheManager(num_blocks=5, block_size=4, enable_caching=True)
    first = request_factory("a", list(range(8)))
    admit(manager, first)
    manager.free(first)
    # The hit takes blocks 1 and 2 out of the free queue, leaving 2 for 3 needed fresh blocks.
    second = request_factory("b", [*range(8), *range(40, 49)])
    blocks, _ = manager.get_computed_blocks(second)
    assert manager.allocate_slots(second, 9, blocks) is None
    assert manager.num_free_blocks == 4
    assert manager.get_block_ids("b") == []
    assert manager.prefix_cache_queries_tokens == 8


def test_prompt_logprobs_skip_the_prefix_cache(request_factory: RequestFactory) -> None:
    manager = KVCacheManager(num_blocks=12, block_size=4, enable_caching=True)
    admit(manager, request_factory("a", list(range(9))))
    with_logprobs = request_factory("b", list(range(9)), prompt_logprobs=1)
    assert manager.get_computed_blocks(with_logprobs) == ([], 0)
    without = request_factory("c", list(range(9)))
    assert manager.get_computed_blocks(without)[1] == 8


def test_caching_disabled_never_hits(request_factory: RequestFactory) -> None:
    manager = KVCacheManager(num_blocks=12, block_size=4, enable_caching=False)
    first = request_factory("a", list(range(9)))
    admit(manager, first)
    assert manager.get_computed_blocks(request_factory("b", list(range(9)))) == ([], 0)
    assert manager.block_pool.cached_block_hash_to_block == {}
    assert manager.prefix_cache_queries_tokens == 0


def test_extra_keys_separate_caches(request_factory: RequestFactory) -> None:
    bf16 = KVCacheManager(num_blocks=12, block_size=4, enable_caching=True, hash_extra_keys=b"bf16")
    fp8 = KVCacheManager(num_blocks=12, block_size=4, enable_caching=True, hash_extra_keys=b"fp8")
    first, second = request_factory("a", list(range(8))), request_factory("b", list(range(8)))
    admit(bf16, first)
    admit(fp8, second)
    assert len(first.block_hashes) == len(second.block_hashes) == 2
    assert set(first.block_hashes).isdisjoint(second.block_hashes)
