"""The shared-storage block file: what is written reads back bit for bit; anything damaged,
foreign or half-written is refused with the reason."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from tenon_kvconnectors.shared_storage import block_file
from tenon_kvconnectors.shared_storage.block_file import (
    BlockFileError,
    BlockLayout,
    block_path,
    read_block_file,
    write_block_file,
)

SHAPE = (2, 2, 4, 2, 8)  # [num_layers, 2, block_size, num_kv_heads, head_size]
HASH = hashlib.sha256(b"block 0").digest()
OTHER_HASH = hashlib.sha256(b"block 1").digest()


def layout(dtype: torch.dtype = torch.float32) -> BlockLayout:
    numel = 2 * 2 * 4 * 2 * 8
    return BlockLayout(dtype=str(dtype).removeprefix("torch."), block_shape=SHAPE,
                       payload_bytes=numel * torch.empty((), dtype=dtype).element_size())


def payload(dtype: torch.dtype = torch.float32, seed: int = 0) -> bytes:
    block = torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed)).to(dtype)
    return block.view(torch.uint8).numpy().tobytes()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_round_trip_is_bit_exact(tmp_path: Path, dtype: torch.dtype) -> None:
    data = payload(dtype, seed=1)
    written = write_block_file(tmp_path, HASH, layout(dtype), data)
    path = block_path(tmp_path, HASH)
    assert path == tmp_path / HASH.hex()[:2] / f"{HASH.hex()}.kvblock"
    assert written == path.stat().st_size > len(data)
    assert read_block_file(tmp_path, HASH, layout(dtype)) == data
    # A second writer of the same block leaves the first file alone.
    assert write_block_file(tmp_path, HASH, layout(dtype), payload(dtype, seed=2)) == 0
    assert read_block_file(tmp_path, HASH, layout(dtype)) == data
    assert [p.name for p in path.parent.iterdir()] == [path.name], "no temporary files left"


def _damaged(tmp_path: Path, change: str) -> Path:
    write_block_file(tmp_path, HASH, layout(), payload())
    path = block_path(tmp_path, HASH)
    data = path.read_bytes()
    header_bytes = int.from_bytes(data[8:12], "little")
    if change == "payload byte":
        data = data[:-1] + bytes([data[-1] ^ 0x01])
    elif change == "header byte":  # valid JSON with a wrong block hash digit
        index = data.index(b'"block_hash": "') + len(b'"block_hash": "')
        data = data[:index] + (b"0" if data[index:index + 1] != b"0" else b"1") + data[index + 1:]
    elif change == "truncated payload":
        data = data[:-1]
    elif change == "truncated header":
        data = data[: 12 + header_bytes // 2]
    elif change == "truncated prefix":
        data = data[:5]
    elif change == "padded":
        data = data + b"\0"
    elif change == "magic":
        data = b"XXXXXXXX" + data[8:]
    elif change == "header length":
        data = data[:8] + (1 << 30).to_bytes(4, "little") + data[12:]
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("payload byte", "checksum mismatch"),
        ("header byte", "header block_hash"),
        ("truncated payload", "truncated"),
        ("truncated header", "truncated inside the header"),
        ("truncated prefix", "truncated before the header"),
        ("padded", "padded"),
        ("magic", "not a Tenon KV block file"),
        ("header length", "implausible"),
    ],
)
def test_damaged_file_is_refused(tmp_path: Path, change: str, reason: str) -> None:
    _damaged(tmp_path, change)
    with pytest.raises(BlockFileError, match=reason):
        read_block_file(tmp_path, HASH, layout())


def test_missing_or_foreign_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BlockFileError, match="missing"):
        read_block_file(tmp_path, HASH, layout())
    write_block_file(tmp_path, HASH, layout(), payload())
    # The same file under another block's name: its header names the block it holds.
    other = block_path(tmp_path, OTHER_HASH)
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_bytes(block_path(tmp_path, HASH).read_bytes())
    with pytest.raises(BlockFileError, match="header block_hash"):
        read_block_file(tmp_path, OTHER_HASH, layout())
    # Written for float32, read by an engine whose cache is bfloat16.
    with pytest.raises(BlockFileError, match="header dtype"):
        read_block_file(tmp_path, HASH, layout(torch.bfloat16))


def test_a_crash_mid_store_leaves_nothing_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(source: object, target: object) -> None:
        raise OSError("killed before the rename")

    monkeypatch.setattr(block_file.os, "replace", crash)
    with pytest.raises(OSError, match="killed"):
        write_block_file(tmp_path, HASH, layout(), payload())
    monkeypatch.undo()
    assert not block_path(tmp_path, HASH).exists()
    assert list(tmp_path.rglob("*.tmp")) == [], "the temporary file was cleaned up"
    # A process killed outright leaves its temporary file; nobody looks it up.
    leftover = block_path(tmp_path, HASH).with_name(f".{HASH.hex()}.kvblock.123.abc.tmp")
    leftover.write_bytes(b"TNSHKV01" + b"\0" * 10)
    with pytest.raises(BlockFileError, match="missing"):
        read_block_file(tmp_path, HASH, layout())
    assert write_block_file(tmp_path, HASH, layout(), payload()) > 0
    assert read_block_file(tmp_path, HASH, layout()) == payload()
