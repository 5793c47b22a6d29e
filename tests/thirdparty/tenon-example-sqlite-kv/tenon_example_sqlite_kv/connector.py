"""A KV connector over one SQLite database: the smallest complete connector.

Scheduler side: the leading blocks the database holds; loads into the allocated blocks; a
finished request's computed blocks saved (the engine keeps them until the save is reported).
Worker side, all synchronous: `start_load` reads and checks every block and copies it into the
KV cache; `wait_for_save` writes the finished requests' blocks in one transaction and reports
them done in the same step. A missing or damaged row is reported in `failed_block_ids`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from tenon.spec.kv_connector import ConnectorRequest, KVConnectorScheduler, KVConnectorWorker
from tenon_example_sqlite_kv import store


class SQLiteKVScheduler(KVConnectorScheduler):
    def __init__(self, *, role: str, extra_config: Mapping[str, Any]) -> None:
        super().__init__(role=role, extra_config=extra_config)
        self.connection = store.connect(extra_config)
        self.loads: list[tuple[int, bytes]] = []  # (block id, block hash)
        self.saves: list[tuple[str, list[tuple[int, bytes]]]] = []

    def num_external_tokens(self, request: ConnectorRequest, num_computed_tokens: int) -> int:
        if self.role == "kv_producer":
            return 0
        first = num_computed_tokens // request.block_size
        last = (len(request.token_ids) - 1) // request.block_size
        count = 0
        for block_hash in request.block_hashes[first:last]:
            if not store.contains(self.connection, block_hash):
                break
            count += 1
        return count * request.block_size

    def on_allocated(
        self, request: ConnectorRequest, block_ids: Sequence[int], num_external_tokens: int
    ) -> None:
        num_blocks = num_external_tokens // request.block_size
        for index in range(len(block_ids) - num_blocks, len(block_ids)):
            self.loads.append((block_ids[index], request.block_hashes[index]))

    def build_step_metadata(self) -> dict[str, Any]:
        metadata = {"loads": self.loads, "saves": self.saves}
        self.loads, self.saves = [], []
        return metadata

    def on_request_finished(self, request: ConnectorRequest, block_ids: Sequence[int]) -> bool:
        if self.role == "kv_consumer" or not request.block_hashes:
            return False
        blocks = list(zip(block_ids, request.block_hashes, strict=False))
        self.saves.append((request.request_id, blocks))
        return True


class SQLiteKVWorker(KVConnectorWorker):
    def __init__(self, *, role: str, extra_config: Mapping[str, Any]) -> None:
        super().__init__(role=role, extra_config=extra_config)
        self.connection = store.connect(extra_config)
        self.kv_cache: torch.Tensor | None = None
        self.layout = ""
        self.saves: list[tuple[str, list[tuple[int, bytes]]]] = []
        self.saved: set[str] = set()
        self.failed: set[int] = set()
        self.stored_bytes = 0

    def register_kv_cache(self, kv_cache: torch.Tensor, block_size: int) -> None:
        self.kv_cache = kv_cache
        self.layout = f"{kv_cache.dtype}:{list(kv_cache.shape[1:])}"

    def start_load(self, step_metadata: Any) -> None:
        assert self.kv_cache is not None
        self.saves = step_metadata["saves"]
        for block_id, block_hash in step_metadata["loads"]:
            payload = store.read(self.connection, block_hash, self.layout)
            if payload is None:
                self.failed.add(block_id)
                continue
            block = torch.frombuffer(bytearray(payload), dtype=self.kv_cache.dtype)
            self.kv_cache[block_id].copy_(block.view(self.kv_cache.shape[1:]))

    def wait_for_layer_load(self, layer_index: int) -> None:
        """Loads completed in `start_load`."""

    def save_layer(self, layer_index: int, kv_layer: torch.Tensor, metadata: Any) -> None:
        """Blocks are saved whole once their request finishes."""

    def wait_for_save(self) -> None:
        assert self.kv_cache is not None
        for request_id, blocks in self.saves:
            rows = [
                (block_hash, self.kv_cache[block_id].cpu().contiguous().view(torch.uint8).numpy().tobytes())
                for block_id, block_hash in blocks
            ]
            self.stored_bytes += store.write(self.connection, rows, self.layout)
            self.saved.add(request_id)
        self.saves = []

    def finished_transfers(self) -> tuple[set[str], set[str]]:
        saved, self.saved = self.saved, set()
        return saved, set()

    def failed_block_ids(self) -> set[int]:
        failed, self.failed = self.failed, set()
        return failed

    def take_stored_bytes(self) -> int:
        stored, self.stored_bytes = self.stored_bytes, 0
        return stored
