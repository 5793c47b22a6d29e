"""Shutting an engine down finishes the disk tier's queued writes: blocks stored right before
`LLM.shutdown()` are on disk when it returns, and the next engine loads the prefix from them."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tenon import LLM
from tenon.plugins.kv_tiers import disk_files
from tests.plugins.kv_tiers.test_offloading_engine import (
    AGAIN,
    BLOCK_SIZE,
    DEVICE_BLOCKS,
    FIRST,
    PREFIX,
    generate,
    tiers,
)

pytestmark = pytest.mark.usefixtures("offloading_plugin")

WRITE_DELAY_S = 0.3


def disk_engine(model_dir: Path, directory: Path) -> LLM:
    return LLM(str(model_dir), dtype="float32", log_startup=False, block_size=BLOCK_SIZE,
               num_gpu_blocks_override=DEVICE_BLOCKS, max_model_len=64,
               kv_offloading_dir=str(directory), kv_offloading_disk_size=1.0)


def test_writes_queued_before_shutdown_reach_the_next_engine(
    long_llama_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "kv"
    released = threading.Event()
    original_write = disk_files.write_file

    def held_write(path: Path, parts: Any, *, fsync: bool) -> None:
        released.wait()  # no block file is written until the test lets the writer go
        original_write(path, parts, fsync=fsync)

    monkeypatch.setattr(disk_files, "write_file", held_write)
    llm = disk_engine(long_llama_dir, directory)
    generate(llm, FIRST)  # its 12 full blocks are queued for the disk when generate returns
    assert list(directory.rglob("*.kvblock")) == []
    # Released only after shutdown began: a shutdown that did not wait for the writer would
    # return before any file exists.
    timer = threading.Timer(WRITE_DELAY_S, released.set)
    timer.start()
    try:
        llm.shutdown()
    finally:
        released.set()
        timer.cancel()
    assert len(list(directory.rglob("*.kvblock"))) == 12
    monkeypatch.setattr(disk_files, "write_file", original_write)

    restarted = disk_engine(long_llama_dir, directory)
    try:
        output = generate(restarted, AGAIN)
        assert output.num_cached_tokens == len(PREFIX)
        disk = tiers(restarted)["disk"].stats()
        assert (disk.num_hit_blocks, disk.num_load_failures) == (len(PREFIX) // BLOCK_SIZE, 0)
    finally:
        restarted.shutdown()
