"""One KV block in one file, self-describing and checksummed, written atomically.

    offset   bytes  field
    0        8      magic b"TNSHKV01"
    8        4      header_bytes, uint32 little-endian
    12       h      header: JSON (sorted keys) {format_version, block_hash (hex), dtype,
                    block_shape, layout, payload_bytes, payload_sha256 (hex)}
    12 + h   p      payload: the block's bytes, row-major over block_shape
                    ([num_layers, 2, block_size, num_kv_heads, head_size])

The block hash digests the model, dtype and block size with the tokens (tenon.engine.block_hash),
so it names the model as well as the content; dtype, shape and layout name the byte layout.
A file is trusted only when every field matches what the reader expects and the payload's
sha256 matches: a truncated, corrupted or foreign file is refused, never returned as data.
Files are written under a temporary name, fsynced, then renamed, so a crash mid-write leaves
only a temporary file that no reader looks up.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import uuid
from pathlib import Path

import attrs

MAGIC = b"TNSHKV01"
FORMAT_VERSION = 1
LAYOUT = "blocks_outermost"  # tenon.spec.attention.KV_CACHE_LAYOUT
SUFFIX = ".kvblock"
_PREFIX = struct.Struct("<8sI")  # magic, header_bytes
MAX_HEADER_BYTES = 1 << 16  # a corrupted length must never make us read gigabytes


class BlockFileError(Exception):
    """A block file that must not be trusted; the message says why."""


@attrs.frozen(kw_only=True)
class BlockLayout:
    dtype: str  # "float32", "bfloat16", ...
    block_shape: tuple[int, ...]  # [num_layers, 2, block_size, num_kv_heads, head_size]
    payload_bytes: int  # the block's size in bytes


def block_path(root: Path, block_hash: bytes) -> Path:
    """Where a block lives: fanned out over 256 folders by the hash's first byte."""
    name = block_hash.hex()
    return root / name[:2] / f"{name}{SUFFIX}"


def _header(block_hash: bytes, layout: BlockLayout, payload: bytes) -> bytes:
    header = {
        "format_version": FORMAT_VERSION,
        "block_hash": block_hash.hex(),
        "dtype": layout.dtype,
        "block_shape": list(layout.block_shape),
        "layout": LAYOUT,
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    return json.dumps(header, sort_keys=True).encode()


def write_block_file(root: Path, block_hash: bytes, layout: BlockLayout, payload: bytes) -> int:
    """Store one block unless a file for its hash exists; returns the bytes written (0 when
    it existed). Temp name, fsync, rename: readers see a whole file or none."""
    assert len(payload) == layout.payload_bytes, "payload does not match the layout"
    path = block_path(root, block_hash)
    if path.exists():
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    header = _header(block_hash, layout, payload)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "wb") as file:
            file.write(_PREFIX.pack(MAGIC, len(header)))
            file.write(header)
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return _PREFIX.size + len(header) + len(payload)


def read_block_file(root: Path, block_hash: bytes, layout: BlockLayout) -> bytes:
    """The payload of a block's file, after checking it; BlockFileError otherwise (missing,
    truncated, corrupted, or written for another block, model or layout)."""
    path = block_path(root, block_hash)
    try:
        with open(path, "rb") as file:
            prefix = file.read(_PREFIX.size)
            if len(prefix) < _PREFIX.size:
                raise BlockFileError(f"{path}: truncated before the header")
            magic, header_bytes = _PREFIX.unpack(prefix)
            if magic != MAGIC:
                raise BlockFileError(f"{path}: not a Tenon KV block file (magic {magic!r})")
            if header_bytes > MAX_HEADER_BYTES:
                raise BlockFileError(f"{path}: header length {header_bytes} is implausible")
            raw_header = file.read(header_bytes)
            header = _parse_header(path, raw_header, header_bytes)
            _check_header(path, header, block_hash, layout)
            # One byte more than expected, so a padded file is caught as well as a short one.
            payload = file.read(layout.payload_bytes + 1)
    except FileNotFoundError:
        raise BlockFileError(f"{path}: missing") from None
    except OSError as error:
        raise BlockFileError(f"{path}: unreadable ({error})") from None
    if len(payload) != layout.payload_bytes:
        raise BlockFileError(
            f"{path}: payload is {len(payload)} bytes, expected {layout.payload_bytes}: "
            f"{'truncated' if len(payload) < layout.payload_bytes else 'padded'}"
        )
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise BlockFileError(f"{path}: payload checksum mismatch (corrupted)")
    return payload


def _parse_header(path: Path, raw_header: bytes, header_bytes: int) -> dict[str, object]:
    if len(raw_header) < header_bytes:
        raise BlockFileError(f"{path}: truncated inside the header")
    try:
        header = json.loads(raw_header)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BlockFileError(f"{path}: header is not valid JSON (corrupted)") from None
    if not isinstance(header, dict):
        raise BlockFileError(f"{path}: header is not a JSON object (corrupted)")
    return header


def _check_header(
    path: Path, header: dict[str, object], block_hash: bytes, layout: BlockLayout
) -> None:
    expected = {
        "format_version": FORMAT_VERSION,
        "block_hash": block_hash.hex(),
        "dtype": layout.dtype,
        "block_shape": list(layout.block_shape),
        "layout": LAYOUT,
        "payload_bytes": layout.payload_bytes,
    }
    for key, value in expected.items():
        if header.get(key) != value:
            raise BlockFileError(f"{path}: header {key} is {header.get(key)!r}, expected {value!r}")


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; not every platform can open a directory."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
