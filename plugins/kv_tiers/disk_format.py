"""The disk tier's file format: one file per KV block, self-describing and checksummed.

    offset   bytes  field
    0        8      magic b"TNKVBLK1"
    8        4      meta_bytes    uint32 little-endian
    12       8      payload_bytes uint64 little-endian
    20       32     sha256(meta || payload)
    52       m      meta: JSON (sorted keys) naming the block hash, the model, the dtype, the
                    block shape and the KV cache layout the payload belongs to
    52 + m   p      payload: the block's bytes, row-major over the block shape

A file is trusted only when its magic, meta (for the expected block and model), sizes and
checksum all match; anything else is a truncated, corrupted or foreign file and is never
returned as data.
"""

from __future__ import annotations

import hashlib
import json
import struct

import attrs

MAGIC = b"TNKVBLK1"
FORMAT_VERSION = 1
_FIXED = struct.Struct("<8sIQ32s")  # magic, meta_bytes, payload_bytes, checksum
FIXED_HEADER_BYTES = _FIXED.size  # 52
FILE_SUFFIX = ".kvblock"
MAX_META_BYTES = 1 << 16  # a sanity bound, so a corrupted length never makes us read gigabytes


class InvalidBlockFile(Exception):
    """A block file that must not be trusted; the message says why."""


@attrs.frozen(kw_only=True)
class BlockIdentity:
    """What a block's bytes mean: the same hash under another model or layout is foreign."""

    model: str
    dtype: str  # torch dtype name, e.g. "bfloat16"
    block_shape: tuple[int, ...]
    layout: str  # tenon.spec.attention.KV_CACHE_LAYOUT

    def meta(self, block_hash: bytes) -> bytes:
        return json.dumps(
            {
                "format": FORMAT_VERSION,
                "block_hash": block_hash.hex(),
                "model": self.model,
                "dtype": self.dtype,
                "block_shape": list(self.block_shape),
                "layout": self.layout,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()

    @property
    def digest(self) -> str:
        """A short name for this identity (the tier's subdirectory)."""
        return hashlib.sha256(self.meta(b"")).hexdigest()[:16]


def encode_header(identity: BlockIdentity, block_hash: bytes, payload: memoryview) -> bytes:
    """Everything before the payload; write the payload right after it."""
    meta = identity.meta(block_hash)
    checksum = hashlib.sha256(meta)
    checksum.update(payload)
    return _FIXED.pack(MAGIC, len(meta), payload.nbytes, checksum.digest()) + meta


def file_bytes(identity: BlockIdentity, block_hash: bytes, payload_bytes: int) -> int:
    """The size of a valid file holding `block_hash`'s block of `payload_bytes`."""
    return FIXED_HEADER_BYTES + len(identity.meta(block_hash)) + payload_bytes


def check_header(
    head: bytes, identity: BlockIdentity, block_hash: bytes, payload_bytes: int, file_size: int
) -> tuple[int, bytes]:
    """Check the fixed header and meta at the start of a file of `file_size` bytes.

    `head` must hold at least the fixed header and the meta. Returns (offset of the payload,
    expected checksum); raises InvalidBlockFile with the reason otherwise.
    """
    if len(head) < FIXED_HEADER_BYTES:
        raise InvalidBlockFile(f"truncated: {len(head)} bytes, shorter than the header")
    magic, meta_bytes, stored_payload_bytes, checksum = _FIXED.unpack_from(head)
    if magic != MAGIC:
        raise InvalidBlockFile(f"bad magic {magic!r}")
    if meta_bytes > MAX_META_BYTES or len(head) < FIXED_HEADER_BYTES + meta_bytes:
        raise InvalidBlockFile(f"truncated or corrupted meta ({meta_bytes} bytes)")
    meta = head[FIXED_HEADER_BYTES : FIXED_HEADER_BYTES + meta_bytes]
    if meta != identity.meta(block_hash):
        raise InvalidBlockFile("meta names another block, model or layout")
    if stored_payload_bytes != payload_bytes:
        raise InvalidBlockFile(f"payload of {stored_payload_bytes} bytes, expected {payload_bytes}")
    payload_offset = FIXED_HEADER_BYTES + meta_bytes
    if file_size != payload_offset + payload_bytes:
        raise InvalidBlockFile(f"{file_size} bytes, expected {payload_offset + payload_bytes}")
    return payload_offset, checksum


def verify_file(
    data: bytes | bytearray | memoryview, identity: BlockIdentity, block_hash: bytes,
    payload_bytes: int,
) -> memoryview:
    """The payload of a whole file's bytes after every check; raises InvalidBlockFile."""
    view = memoryview(data)
    payload_offset, checksum = check_header(
        bytes(view[: FIXED_HEADER_BYTES + MAX_META_BYTES]), identity, block_hash, payload_bytes,
        view.nbytes,
    )
    digest = hashlib.sha256(view[FIXED_HEADER_BYTES:payload_offset])
    payload = view[payload_offset:]
    digest.update(payload)
    if digest.digest() != checksum:
        raise InvalidBlockFile("checksum mismatch")
    return payload


def block_file_name(block_hash: bytes) -> str:
    return block_hash.hex() + FILE_SUFFIX


def block_hash_of(file_name: str) -> bytes | None:
    """The block hash a file name encodes, or None for a name this tier never writes."""
    if not file_name.endswith(FILE_SUFFIX):
        return None
    stem = file_name[: -len(FILE_SUFFIX)]
    try:
        block_hash = bytes.fromhex(stem)
    except ValueError:
        return None
    return block_hash if block_hash and block_hash.hex() == stem else None
