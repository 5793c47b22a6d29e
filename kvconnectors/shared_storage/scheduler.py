"""The scheduler side: which leading blocks the shared directory holds, what to load and save."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tenon.spec.kv_connector import ConnectorRequest, KVConnectorScheduler
from tenon_kvconnectors.shared_storage.block_file import block_path
from tenon_kvconnectors.shared_storage.metadata import (
    BlockLoad,
    RequestSave,
    SharedStorageStepMetadata,
    storage_path,
)


class SharedStorageScheduler(KVConnectorScheduler):
    def __init__(self, *, role: str, extra_config: Mapping[str, Any]) -> None:
        super().__init__(role=role, extra_config=extra_config)
        self.root = storage_path(extra_config)
        self.loads_enabled = role in ("kv_consumer", "kv_both")
        self.saves_enabled = role in ("kv_producer", "kv_both")
        self._loads: list[BlockLoad] = []
        self._saves: list[RequestSave] = []

    def num_external_tokens(self, request: ConnectorRequest, num_computed_tokens: int) -> int:
        """Leading blocks after the local hit whose files exist (checked again when loaded:
        existing is not the same as intact)."""
        if not self.loads_enabled:
            return 0
        block_size = request.block_size
        first_block = num_computed_tokens // block_size
        # The last token is always computed: its logits give the next token.
        end_block = min((len(request.token_ids) - 1) // block_size, len(request.block_hashes))
        num_blocks = 0
        for block_hash in request.block_hashes[first_block:end_block]:
            if not block_path(self.root, block_hash).is_file():
                break
            num_blocks += 1
        return num_blocks * block_size

    def on_allocated(
        self, request: ConnectorRequest, block_ids: Sequence[int], num_external_tokens: int
    ) -> None:
        num_blocks = num_external_tokens // request.block_size
        first = len(block_ids) - num_blocks
        for index in range(first, len(block_ids)):
            self._loads.append(
                BlockLoad(
                    request_id=request.request_id,
                    block_id=block_ids[index],
                    block_hash=request.block_hashes[index],
                )
            )

    def build_step_metadata(self) -> SharedStorageStepMetadata:
        metadata = SharedStorageStepMetadata(loads=tuple(self._loads), saves=tuple(self._saves))
        self._loads, self._saves = [], []
        return metadata

    def on_request_finished(self, request: ConnectorRequest, block_ids: Sequence[int]) -> bool:
        """Save the request's computed full blocks the directory lacks; keep them until done."""
        if not self.saves_enabled:
            return False
        blocks = tuple(
            (block_ids[index], block_hash)
            for index, block_hash in enumerate(request.block_hashes)
            if not block_path(self.root, block_hash).is_file()
        )
        if not blocks:
            return False
        self._saves.append(RequestSave(request_id=request.request_id, blocks=blocks))
        return True
