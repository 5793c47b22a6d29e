"""Stable block hashes for prefix caching.

A block's hash names its content *and* everything before it: it digests the parent block's
hash, the block's token ids and extra keys (model, dtype, KV layout, later LoRA or multimodal
inputs). Two requests share a cached block only when their whole prefix up to and including
that block is identical.

The digest is sha256 over fixed-width little-endian integers, never Python's `hash()` (salted
per process): disk tiers and prefill/decode disaggregation compare hashes made by different
processes and machines.

    block 0                 block 1                 block 2 (partial: no hash yet)
    [t0 .. t15]             [t16 .. t31]            [t32 .. t37]
    h0 = H(ROOT, t0..t15)   h1 = H(h0, t16..t31)
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

# Parent of the first block of every sequence. A fixed, versioned constant: changing how
# hashes are computed must change this string so old on-disk hashes stop matching.
ROOT_PARENT_BLOCK_HASH: bytes = hashlib.sha256(b"tenon-block-hash-root-v1").digest()

BLOCK_HASH_NUM_BYTES = 32


def hash_block_tokens(
    parent_block_hash: bytes | None, token_ids: Sequence[int], extra_keys: bytes = b""
) -> bytes:
    """The 32-byte sha256 digest of one full block.

    `parent_block_hash` is None for the first block of a sequence. Token ids are packed as
    little-endian int64 so any vocabulary size hashes the same on every platform; the token
    count and the extra keys' length are hashed too, so no two different inputs share a byte
    stream.
    """
    parent = ROOT_PARENT_BLOCK_HASH if parent_block_hash is None else parent_block_hash
    assert len(parent) == BLOCK_HASH_NUM_BYTES, "parent block hash must be a sha256 digest"
    num_tokens = len(token_ids)
    digest = hashlib.sha256(parent)
    digest.update(struct.pack("<Q", num_tokens))
    digest.update(struct.pack(f"<{num_tokens}q", *token_ids))
    digest.update(struct.pack("<Q", len(extra_keys)))
    digest.update(extra_keys)
    return digest.digest()


def update_block_hashes(
    block_hashes: list[bytes], token_ids: Sequence[int], block_size: int, extra_keys: bytes = b""
) -> int:
    """Append the hashes of blocks of `token_ids` that became full since the last call.

    `block_hashes` holds the hashes already computed for this sequence (one per full block, in
    order) and is extended in place; the cost is proportional to the newly full blocks only.
    Returns how many hashes were added.
    """
    num_full_blocks = len(token_ids) // block_size
    num_hashed_blocks = len(block_hashes)
    parent = block_hashes[-1] if block_hashes else None
    for block_index in range(num_hashed_blocks, num_full_blocks):
        start = block_index * block_size
        parent = hash_block_tokens(parent, token_ids[start : start + block_size], extra_keys)
        block_hashes.append(parent)
    return max(num_full_blocks - num_hashed_blocks, 0)
