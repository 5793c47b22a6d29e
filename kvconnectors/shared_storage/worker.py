"""The worker side: reads and checks block files in a background thread while the step's
inputs are prepared, copies them into the KV cache layer by layer, and writes finished
requests' blocks in the background (the engine keeps those blocks until they are written).

    start_load          submit one read per block (read, check header and sha256)
    wait_for_layer_load(l)  first call: wait for the reads; every call: copy layer l in
    wait_for_save       copy the blocks to save off the cache, submit their writes
    finished_transfers  requests whose writes are all done, requests loaded this step
    failed_block_ids    blocks whose file was missing, truncated or corrupted
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import torch

from tenon.spec.kv_connector import KVConnectorWorker
from tenon_kvconnectors.shared_storage.block_file import (
    BlockFileError,
    BlockLayout,
    block_path,
    read_block_file,
    write_block_file,
)
from tenon_kvconnectors.shared_storage.metadata import (
    BlockLoad,
    RequestSave,
    SharedStorageStepMetadata,
    storage_path,
)

if TYPE_CHECKING:
    from tenon.spec.attention import AttentionMetadata

logger = logging.getLogger(__name__)


class SharedStorageWorker(KVConnectorWorker):
    def __init__(self, *, role: str, extra_config: Mapping[str, Any]) -> None:
        super().__init__(role=role, extra_config=extra_config)
        self.root = storage_path(extra_config)
        # One thread: file IO overlaps the step, and reads or writes never race each other.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tenon-shared-storage")
        self._kv_cache: torch.Tensor | None = None
        self._layout: BlockLayout | None = None
        self._reads: list[tuple[BlockLoad, Future[bytes]]] = []
        # Loaded blocks as host tensors [num_layers, 2, block_size, heads, head_size], by block.
        self._loaded: list[tuple[int, torch.Tensor]] = []
        self._pending_saves: tuple[RequestSave, ...] = ()
        self._writes: dict[str, list[Future[int]]] = {}
        self._loaded_request_ids: set[str] = set()
        self._failed_block_ids: set[int] = set()
        self._stored_bytes = 0

    def register_kv_cache(self, kv_cache: torch.Tensor, block_size: int) -> None:
        self._kv_cache = kv_cache
        block_shape = tuple(kv_cache.shape[1:])
        self._layout = BlockLayout(
            dtype=str(kv_cache.dtype).removeprefix("torch."),
            block_shape=block_shape,
            payload_bytes=kv_cache[0].numel() * kv_cache.element_size(),
        )

    def start_load(self, step_metadata: Any) -> None:
        if step_metadata is None:
            return
        assert isinstance(step_metadata, SharedStorageStepMetadata)
        assert self._layout is not None, "register_kv_cache comes first"
        layout = self._layout
        self._pending_saves = step_metadata.saves
        self._reads = [
            (load, self._pool.submit(read_block_file, self.root, load.block_hash, layout))
            for load in step_metadata.loads
        ]

    def wait_for_layer_load(self, layer_index: int) -> None:
        if self._reads:
            self._collect_reads()
        assert self._kv_cache is not None
        for block_id, block in self._loaded:
            # kv_cache[block_id, layer]: [2, block_size, heads, head_size]
            self._kv_cache[block_id, layer_index].copy_(block[layer_index], non_blocking=True)

    def save_layer(
        self, layer_index: int, kv_layer: torch.Tensor, metadata: AttentionMetadata
    ) -> None:
        """Nothing per layer: blocks are saved whole once their request finishes."""

    def wait_for_save(self) -> None:
        self._loaded = []  # every layer has been copied in by now
        if not self._pending_saves:
            return
        assert self._kv_cache is not None and self._layout is not None
        for save in self._pending_saves:
            futures = self._writes.setdefault(save.request_id, [])
            for block_id, block_hash in save.blocks:
                payload = _block_bytes(self._kv_cache[block_id])
                futures.append(
                    self._pool.submit(write_block_file, self.root, block_hash, self._layout, payload)
                )
        self._pending_saves = ()

    def finished_transfers(self) -> tuple[set[str], set[str]]:
        finished_saves = set()
        for request_id, futures in list(self._writes.items()):
            if not all(future.done() for future in futures):
                continue
            for future in futures:
                error = future.exception()
                if error is None:
                    self._stored_bytes += future.result()
                else:
                    logger.warning("SharedStorageConnector could not store a block of %s: %s",
                                   request_id, error)
            del self._writes[request_id]
            finished_saves.add(request_id)
        loaded, self._loaded_request_ids = self._loaded_request_ids, set()
        return finished_saves, loaded

    def failed_block_ids(self) -> set[int]:
        failed, self._failed_block_ids = self._failed_block_ids, set()
        return failed

    def take_stored_bytes(self) -> int:
        stored, self._stored_bytes = self._stored_bytes, 0
        return stored

    def _collect_reads(self) -> None:
        assert self._layout is not None
        dtype = getattr(torch, self._layout.dtype)
        for load, future in self._reads:
            try:
                payload = future.result()
            except BlockFileError as error:
                logger.warning("SharedStorageConnector: %s; the block is recomputed", error)
                self._failed_block_ids.add(load.block_id)
                # A damaged file would fail every later reader too; a missing one is gone.
                block_path(self.root, load.block_hash).unlink(missing_ok=True)
                continue
            # block: [num_layers, 2, block_size, heads, head_size] on the host
            block = torch.frombuffer(bytearray(payload), dtype=dtype).view(self._layout.block_shape)
            self._loaded.append((load.block_id, block))
            self._loaded_request_ids.add(load.request_id)
        self._reads = []


def _block_bytes(block: torch.Tensor) -> bytes:
    """A block's bytes, row-major: [num_layers, 2, block_size, heads, head_size]."""
    host = block.detach().to("cpu").contiguous()
    return host.view(torch.uint8).numpy().tobytes()
