from __future__ import annotations

import hashlib
import random
import subprocess
import sys

from tenon.engine.block_hash import (
    ROOT_PARENT_BLOCK_HASH,
    hash_block_tokens,
    update_block_hashes,
)

# Computed once; sha256 is deterministic, so these must never change without a new root.
FIRST_BLOCK_HEX = "74c68b45f51313cfd7db418840a20e024f4db799e40fb4b3bec44fde4b28cd49"
SECOND_BLOCK_HEX = "5012ba0f8fae2c6ffea37dbc4380e8ecf10e64d0ef6fe76155ee27efae2fa74b"
EXTRA_KEYS = b"model=tiny;dtype=bf16"


def reference_hash(parent: bytes | None, token_ids: list[int], extra_keys: bytes) -> bytes:
    """The documented byte layout, written out independently with int.to_bytes."""
    data = parent if parent is not None else hashlib.sha256(b"tenon-block-hash-root-v1").digest()
    data += len(token_ids).to_bytes(8, "little")
    for token_id in token_ids:
        data += token_id.to_bytes(8, "little", signed=True)
    data += len(extra_keys).to_bytes(8, "little") + extra_keys
    return hashlib.sha256(data).digest()


def test_hard_coded_digests() -> None:
    first = hash_block_tokens(None, [1, 2, 3, 4])
    assert first.hex() == FIRST_BLOCK_HEX
    assert hash_block_tokens(first, [5, 6, 7, 8], EXTRA_KEYS).hex() == SECOND_BLOCK_HEX
    assert hash_block_tokens(ROOT_PARENT_BLOCK_HASH, [1, 2, 3, 4]) == first


def test_digest_is_the_same_in_another_process() -> None:
    code = (
        "from tenon.engine.block_hash import hash_block_tokens as h;"
        f"print(h(h(None, [1, 2, 3, 4]), [5, 6, 7, 8], {EXTRA_KEYS!r}).hex())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == SECOND_BLOCK_HEX


def test_matches_reference_layout_on_random_blocks() -> None:
    rng = random.Random(7)
    parent = None
    for _ in range(20):
        token_ids = [rng.randrange(0, 2**40) for _ in range(rng.randrange(1, 17))]
        extra_keys = rng.randbytes(rng.randrange(0, 9))
        expected = reference_hash(parent, token_ids, extra_keys)
        assert hash_block_tokens(parent, token_ids, extra_keys) == expected
        parent = expected


def test_digest_depends_on_parent_tokens_and_extra_keys() -> None:
    base = hash_block_tokens(None, [1, 2, 3, 4], b"a")
    other_parent = hash_block_tokens(None, [9, 9, 9, 9])
    variants = [
        hash_block_tokens(other_parent, [1, 2, 3, 4], b"a"),
        hash_block_tokens(None, [1, 2, 3, 5], b"a"),
        hash_block_tokens(None, [4, 3, 2, 1], b"a"),
        hash_block_tokens(None, [1, 2, 3, 4], b"b"),
        hash_block_tokens(None, [1, 2, 3, 4], b""),
        # Framing: moving bytes between tokens and extra keys must not collide.
        hash_block_tokens(None, [1, 2, 3], (4).to_bytes(8, "little") + b"a"),
    ]
    assert len({base, *variants}) == 7
    assert hash_block_tokens(None, [1, 2, 3, 4], b"a") == base


def test_update_block_hashes_chains_full_blocks_only_and_incrementally() -> None:
    token_ids = list(range(100, 111))  # 11 tokens, block size 4: two full blocks
    block_hashes: list[bytes] = []
    assert update_block_hashes(block_hashes, token_ids, 4, EXTRA_KEYS) == 2
    first = hash_block_tokens(None, token_ids[0:4], EXTRA_KEYS)
    second = hash_block_tokens(first, token_ids[4:8], EXTRA_KEYS)
    assert block_hashes == [first, second]

    assert update_block_hashes(block_hashes, token_ids, 4, EXTRA_KEYS) == 0
    token_ids.append(111)  # the third block fills
    assert update_block_hashes(block_hashes, token_ids, 4, EXTRA_KEYS) == 1
    assert block_hashes[2] == hash_block_tokens(second, token_ids[8:12], EXTRA_KEYS)

    one_shot: list[bytes] = []
    update_block_hashes(one_shot, token_ids, 4, EXTRA_KEYS)
    assert one_shot == block_hashes
