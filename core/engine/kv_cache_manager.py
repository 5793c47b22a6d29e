"""The KV cache manager: which blocks each request holds, and prefix-cache lookups.

The scheduler talks to it in tokens and gets block ids back in a `NewBlocks`; the pool and its
blocks stay inside. A request's block table is its list of blocks; token `i` of the request
lives in slot `i % block_size` of `block_table[i // block_size]`.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from tenon.engine.block_hash import update_block_hashes
from tenon.engine.block_pool import BlockPool, EvictionCallback, KVCacheBlock
from tenon.engine.request import Request


@attrs.frozen
class NewBlocks:
    """The blocks one `allocate_slots` call appended to a request's block table, in order
    (prefix-cache hits first, then freshly allocated blocks); possibly empty."""

    block_ids: tuple[int, ...]


NO_NEW_BLOCKS = NewBlocks(block_ids=())


class KVCacheManager:
    def __init__(
        self,
        num_blocks: int,
        block_size: int,
        enable_caching: bool,
        hash_extra_keys: bytes = b"",
        on_evict: EvictionCallback | None = None,
    ) -> None:
        if block_size < 1:
            raise ValueError(f"block size must be >= 1, got {block_size}")
        self.block_size = block_size
        self.enable_caching = enable_caching
        self.hash_extra_keys = hash_extra_keys
        self.block_pool = BlockPool(num_blocks, enable_caching, on_evict)
        self._request_blocks: dict[str, list[KVCacheBlock]] = {}
        # How many leading blocks of each request have been offered to the prefix cache.
        self._num_cached_blocks: dict[str, int] = {}
        # vLLM's prefix-cache metrics, in tokens, counted once per request at admission
        # (re-admissions after preemption are not counted, as in vLLM).
        self.prefix_cache_queries_tokens = 0
        self.prefix_cache_hits_tokens = 0

    @property
    def num_blocks(self) -> int:
        return self.block_pool.num_blocks

    @property
    def num_usable_blocks(self) -> int:
        """Blocks that can hold tokens: all but the null block."""
        return self.block_pool.num_blocks - 1

    @property
    def num_free_blocks(self) -> int:
        return self.block_pool.num_free_blocks

    @property
    def usage(self) -> float:
        return self.block_pool.usage

    def get_computed_blocks(self, request: Request) -> tuple[list[KVCacheBlock], int]:
        """The longest run of cached full blocks that prefixes the request, and its length
        in tokens.

        At least the last token is always left to compute, since its logits give the next
        token: a full-prompt hit is capped at `(num_tokens - 1) // block_size` blocks.
        """
        if not self.enable_caching or request.skip_reading_prefix_cache:
            return [], 0
        self._update_block_hashes(request)
        max_num_hit_blocks = (request.num_tokens - 1) // self.block_size
        computed_blocks = []
        for block_hash in request.block_hashes[:max_num_hit_blocks]:
            block = self.block_pool.get_cached_block(block_hash)
            if block is None:
                break
            computed_blocks.append(block)
        return computed_blocks, len(computed_blocks) * self.block_size

    def allocate_slots(
        self,
        request: Request,
        num_new_tokens: int,
        new_computed_blocks: Sequence[KVCacheBlock] = (),
        *,
        cache_blocks: bool = True,
    ) -> NewBlocks | None:
        """Make room for `num_new_tokens` more tokens after the request's computed ones.

        `new_computed_blocks` (from `get_computed_blocks`, only on a request's first
        allocation) are taken by reference and count as computed. Full blocks among the
        tokens written this step enter the prefix cache. Returns None, changing nothing,
        when the pool has too few free blocks. `cache_blocks=False` keeps this call's blocks out
        of the prefix cache until the request's next allocation (blocks a KV connector is
        loading into, whose content is known good only after the step).
        """
        request_id = request.request_id
        request_blocks = self._request_blocks.get(request_id)
        if request_blocks is not None and not new_computed_blocks:
            # The common decode case, once per running request per step: the held blocks
            # already have room and no block fills up, so there is nothing to do.
            num_required_tokens = request.num_computed_tokens + num_new_tokens
            assert num_required_tokens <= request.num_tokens_with_placeholders
            if num_required_tokens <= len(request_blocks) * self.block_size and (
                not self.enable_caching
                or num_required_tokens // self.block_size <= self._num_cached_blocks[request_id]
            ):
                return NO_NEW_BLOCKS
        is_first_allocation = request_blocks is None
        assert is_first_allocation or not new_computed_blocks, "prefix hits only at admission"
        num_computed_tokens = (
            request.num_computed_tokens + len(new_computed_blocks) * self.block_size
        )
        num_required_tokens = num_computed_tokens + num_new_tokens
        assert num_required_tokens <= request.num_tokens_with_placeholders
        num_held_blocks = 0 if request_blocks is None else len(request_blocks)
        num_required_blocks = -(-num_required_tokens // self.block_size)
        num_new_blocks = max(num_required_blocks - num_held_blocks - len(new_computed_blocks), 0)
        # Hit blocks with ref count 0 sit in the free queue; taking them shrinks it.
        num_free_hit_blocks = sum(1 for block in new_computed_blocks if block.ref_count == 0)
        if num_new_blocks > self.block_pool.num_free_blocks - num_free_hit_blocks:
            return None

        if request_blocks is None:
            request_blocks = self._request_blocks[request_id] = []
            self._num_cached_blocks[request_id] = len(new_computed_blocks)
            if (
                self.enable_caching
                and request.num_preemptions == 0
                and not request.skip_reading_prefix_cache
            ):
                self.prefix_cache_queries_tokens += request.num_tokens
                self.prefix_cache_hits_tokens += len(new_computed_blocks) * self.block_size
        self.block_pool.touch(new_computed_blocks)
        request_blocks.extend(new_computed_blocks)
        fresh_blocks = self.block_pool.get_new_blocks(num_new_blocks)
        request_blocks.extend(fresh_blocks)

        if self.enable_caching and cache_blocks:
            # Only blocks of known tokens: a placeholder (asynchronous scheduling) has no hash yet.
            self._cache_full_blocks(request, request_blocks, min(num_required_tokens, request.num_tokens))
        return NewBlocks(
            block_ids=tuple(block.block_id for block in (*new_computed_blocks, *fresh_blocks))
        )

    def free(self, request: Request) -> None:
        """Release the request's blocks, tail first so its prefix is evicted last."""
        request_blocks = self._request_blocks.pop(request.request_id, None)
        self._num_cached_blocks.pop(request.request_id, None)
        if request_blocks is not None:
            self.block_pool.free_blocks(reversed(request_blocks))

    def get_block_ids(self, request_id: str) -> list[int]:
        return [block.block_id for block in self._request_blocks.get(request_id, ())]

    def reset_prefix_cache(self) -> bool:
        return self.block_pool.reset_prefix_cache()

    def _update_block_hashes(self, request: Request) -> None:
        update_block_hashes(
            request.block_hashes, request.all_token_ids, self.block_size, self.hash_extra_keys
        )

    def _cache_full_blocks(
        self, request: Request, request_blocks: list[KVCacheBlock], num_tokens: int
    ) -> None:
        num_full_blocks = num_tokens // self.block_size
        num_cached_blocks = self._num_cached_blocks[request.request_id]
        if num_full_blocks <= num_cached_blocks:
            return
        self._update_block_hashes(request)
        self.block_pool.cache_full_blocks(
            request_blocks[num_cached_blocks:num_full_blocks],
            request.block_hashes[num_cached_blocks:num_full_blocks],
        )
        self._num_cached_blocks[request.request_id] = num_full_blocks
