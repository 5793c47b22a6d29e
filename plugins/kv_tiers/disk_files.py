"""File operations of the disk tier: where a block's file lives, writing one safely, reading
one back verified, and scanning a directory of them at start.

    <root>/<first 2 hex digits of the hash>/<hash hex>.kvblock     (root: one per identity)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tenon.plugins.kv_tiers.disk_format import (
    FIXED_HEADER_BYTES,
    MAX_META_BYTES,
    BlockIdentity,
    InvalidBlockFile,
    block_file_name,
    block_hash_of,
    check_header,
    verify_file,
)

TEMP_SUFFIX = ".tmp"


def block_path(root: Path, block_hash: bytes) -> Path:
    name = block_file_name(block_hash)
    return root / name[:2] / name


def write_file(path: Path, parts: Sequence[bytes | memoryview], *, fsync: bool) -> None:
    """Write `parts` to a new file at `path`, flushed to the disk when `fsync`."""
    with open(path, "wb") as file:
        for part in parts:
            file.write(part)
        file.flush()
        if fsync:
            os.fsync(file.fileno())


def read_block_file(
    path: Path, identity: BlockIdentity, block_hash: bytes, payload_bytes: int
) -> memoryview:
    """The verified payload of a block file; OSError if unreadable, InvalidBlockFile if it is
    truncated, corrupted or foreign."""
    with open(path, "rb") as file:
        data = bytearray(os.fstat(file.fileno()).st_size)
        num_read = file.readinto(data)
    return verify_file(memoryview(data)[:num_read], identity, block_hash, payload_bytes)


def scan_block_files(
    root: Path, identity: BlockIdentity, payload_bytes: int
) -> tuple[list[bytes], int]:
    """The block hashes whose files have a valid header and size, least recently modified
    first, and how many files were invalid. Invalid files and temp files (a store a crash
    interrupted) are deleted; files with names this tier never writes are left alone."""
    entries: list[tuple[int, bytes]] = []
    num_invalid = 0
    for path in sorted(root.glob("*/*")):
        if path.name.endswith(TEMP_SUFFIX):
            path.unlink(missing_ok=True)
            continue
        block_hash = block_hash_of(path.name)
        if block_hash is None:
            continue
        try:
            with open(path, "rb") as file:
                status = os.fstat(file.fileno())
                head = file.read(FIXED_HEADER_BYTES + MAX_META_BYTES)
            check_header(head, identity, block_hash, payload_bytes, status.st_size)
        except (OSError, InvalidBlockFile):
            num_invalid += 1
            path.unlink(missing_ok=True)
            continue
        entries.append((status.st_mtime_ns, block_hash))
    entries.sort()
    return [block_hash for _, block_hash in entries], num_invalid
