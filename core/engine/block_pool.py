"""The pool of KV cache blocks: ref counts, an LRU free queue and the prefix-cache map.

Every block with ref count zero sits in the free queue, whether or not it still holds a cached
prefix. Allocation takes from the head of the queue; a cached block taken there is evicted
(its hash leaves the map and is reported through `on_evict`). A request's blocks are freed
tail first, so the end of a sequence is evicted before its shared prefix:

    free queue:  head -> [b7 evict next] <-> [b3] <-> ... <-> [b5 freed last] <- tail
    cache map:   {h(b3): b3, h(b5): b5, ...}   (ref count 0 and cached: free, reusable)

Block 0 is the null block: never handed out, never freed. Padding tokens' slot mapping points
into it, so the runner never needs a sentinel slot value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import attrs

# Receives (block_hash, block_id) for each cached block evicted by one allocation, in eviction
# order, before the block is handed to its new owner: the hand-off point to KV tiers.
EvictionCallback = Callable[[list[tuple[bytes, int]]], None]


@attrs.define(eq=False)
class KVCacheBlock:
    block_id: int
    ref_count: int = 0
    # Set while the block holds a full, cached block of tokens; None otherwise.
    block_hash: bytes | None = None
    # Links of the free queue; meaningful only while the block is in it.
    prev_free_block: KVCacheBlock | None = attrs.field(default=None, repr=False)
    next_free_block: KVCacheBlock | None = attrs.field(default=None, repr=False)


class FreeBlockQueue:
    """Doubly linked list of free blocks with O(1) removal from anywhere, in LRU order.

    Sentinel head and tail blocks keep every insertion and removal branch-free.
    """

    def __init__(self, blocks: Iterable[KVCacheBlock]) -> None:
        self._head = KVCacheBlock(block_id=-1)
        self._tail = KVCacheBlock(block_id=-1)
        self._head.next_free_block = self._tail
        self._tail.prev_free_block = self._head
        self.num_free_blocks = 0
        for block in blocks:
            self.append(block)

    def __len__(self) -> int:
        return self.num_free_blocks

    def popleft(self) -> KVCacheBlock:
        block = self._head.next_free_block
        assert block is not None and block is not self._tail, "no free blocks"
        self.remove(block)
        return block

    def remove(self, block: KVCacheBlock) -> None:
        previous, following = block.prev_free_block, block.next_free_block
        assert previous is not None and following is not None, f"block {block.block_id} not free"
        previous.next_free_block = following
        following.prev_free_block = previous
        block.prev_free_block = None
        block.next_free_block = None
        self.num_free_blocks -= 1

    def append(self, block: KVCacheBlock) -> None:
        assert block.prev_free_block is None and block.next_free_block is None
        last = self._tail.prev_free_block
        assert last is not None
        last.next_free_block = block
        block.prev_free_block = last
        block.next_free_block = self._tail
        self._tail.prev_free_block = block
        self.num_free_blocks += 1

    def block_ids(self) -> list[int]:
        """The free block ids from head (next to allocate) to tail; for tests and debugging."""
        block_ids = []
        block = self._head.next_free_block
        while block is not None and block is not self._tail:
            block_ids.append(block.block_id)
            block = block.next_free_block
        return block_ids


class BlockPool:
    def __init__(
        self, num_blocks: int, enable_caching: bool, on_evict: EvictionCallback | None = None
    ) -> None:
        if num_blocks < 2:
            raise ValueError(
                f"the KV cache has {num_blocks} blocks but needs at least 2 (block 0 is "
                "reserved); give the KV cache more memory or use a smaller block size"
            )
        self.num_blocks = num_blocks
        self.enable_caching = enable_caching
        self.on_evict = on_evict
        self.blocks = [KVCacheBlock(block_id) for block_id in range(num_blocks)]
        self.free_block_queue = FreeBlockQueue(self.blocks)
        self.null_block = self.free_block_queue.popleft()
        self.cached_block_hash_to_block: dict[bytes, KVCacheBlock] = {}

    @property
    def num_free_blocks(self) -> int:
        return self.free_block_queue.num_free_blocks

    @property
    def usage(self) -> float:
        """Fraction (0..1) of the usable blocks held by some request (ref count > 0)."""
        num_usable_blocks = self.num_blocks - 1
        return 1.0 - self.num_free_blocks / num_usable_blocks

    def get_cached_block(self, block_hash: bytes) -> KVCacheBlock | None:
        return self.cached_block_hash_to_block.get(block_hash)

    def get_new_blocks(self, num_blocks: int) -> list[KVCacheBlock]:
        """Take `num_blocks` from the head of the free queue, evicting any cached ones."""
        assert num_blocks <= self.num_free_blocks, "caller must check num_free_blocks first"
        new_blocks = []
        evicted: list[tuple[bytes, int]] = []
        for _ in range(num_blocks):
            block = self.free_block_queue.popleft()
            assert block.ref_count == 0
            if block.block_hash is not None:
                del self.cached_block_hash_to_block[block.block_hash]
                evicted.append((block.block_hash, block.block_id))
                block.block_hash = None
            block.ref_count = 1
            new_blocks.append(block)
        if evicted and self.on_evict is not None:
            self.on_evict(evicted)
        return new_blocks

    def touch(self, blocks: Iterable[KVCacheBlock]) -> None:
        """Take one more reference on each block (a prefix-cache hit reusing them)."""
        for block in blocks:
            if block.ref_count == 0:
                # Free but cached: it leaves the free queue so it cannot be evicted.
                self.free_block_queue.remove(block)
            block.ref_count += 1

    def free_blocks(self, ordered_blocks: Iterable[KVCacheBlock]) -> None:
        """Drop one reference from each block; blocks reaching zero join the queue's tail.

        Pass blocks in the order they should be evicted (first = evicted first).
        """
        for block in ordered_blocks:
            assert block.ref_count > 0 and block is not self.null_block
            block.ref_count -= 1
            if block.ref_count == 0:
                self.free_block_queue.append(block)

    def cache_full_blocks(
        self, blocks: Sequence[KVCacheBlock], block_hashes: Sequence[bytes]
    ) -> None:
        """Enter full blocks into the prefix cache, pairing `blocks[i]` with `block_hashes[i]`.

        A block already cached (a prefix hit) is left alone. When another block already holds
        the same hash (two requests computed the same prefix at once), the newcomer stays
        uncached: one copy is enough for reuse, and the map stays one hash -> one block.
        """
        if not self.enable_caching:
            return
        assert len(blocks) == len(block_hashes)
        for block, block_hash in zip(blocks, block_hashes, strict=True):
            if block.block_hash is not None:
                assert block.block_hash == block_hash
                continue
            if block_hash in self.cached_block_hash_to_block:
                continue
            block.block_hash = block_hash
            self.cached_block_hash_to_block[block_hash] = block

    def reset_prefix_cache(self) -> bool:
        """Forget every cached hash. Refused (returns False) while any block is in use."""
        if self.num_free_blocks != self.num_blocks - 1:
            return False
        for block in self.cached_block_hash_to_block.values():
            block.block_hash = None
        self.cached_block_hash_to_block.clear()
        return True
