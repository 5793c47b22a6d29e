"""The OffloadingConnector's scheduler side: what the tiers can supply, and what to save.

- Admission: the leading blocks past the local prefix hit that some tier holds are offered as
  external tokens (whole blocks, never the block holding the last prompt token); once blocks
  are allocated, the step's metadata tells the worker to load them.
- Finish: every full block the request computed that no tier holds yet is saved; the request's
  blocks stay allocated until the worker has copied them (the CPU tier's copy, or the disk
  tier's host copy, is taken before the worker reports the save done), so a device block is
  never reused before its bytes are safe. Blocks of preempted requests are not saved: they are
  recomputed, as without offloading.
Role: "kv_producer" only saves, "kv_consumer" only loads, "kv_both" does both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tenon.plugins.kv_tiers.connector_metadata import BlockTransfer, OffloadingStepMetadata
from tenon.plugins.kv_tiers.offloading_config import session_of
from tenon.plugins.kv_tiers.stats import TierStats
from tenon.spec.kv_connector import ConnectorRequest, KVConnectorScheduler


class OffloadingConnectorScheduler(KVConnectorScheduler):
    def __init__(self, *, role: str, extra_config: Mapping[str, Any]) -> None:
        super().__init__(role=role, extra_config=extra_config)
        self.session = session_of(extra_config)
        self._loads: list[BlockTransfer] = []
        self._saves: list[BlockTransfer] = []

    def num_external_tokens(self, request: ConnectorRequest, num_computed_tokens: int) -> int:
        chain = self.session.chain
        if chain is None or self.role == "kv_producer":
            return 0
        block_size = request.block_size
        first_block = num_computed_tokens // block_size
        # The last prompt token is always computed: its logits give the next token.
        end_block = (len(request.token_ids) - 1) // block_size
        return chain.lookup(request.block_hashes[first_block:end_block]) * block_size

    def on_allocated(
        self, request: ConnectorRequest, block_ids: Sequence[int], num_external_tokens: int
    ) -> None:
        num_blocks = num_external_tokens // request.block_size
        if num_blocks == 0:
            return
        end = len(block_ids)
        self._loads.append(
            BlockTransfer(
                request_id=request.request_id,
                block_hashes=tuple(request.block_hashes[end - num_blocks : end]),
                block_ids=tuple(block_ids[end - num_blocks : end]),
            )
        )

    def build_step_metadata(self) -> OffloadingStepMetadata:
        metadata = OffloadingStepMetadata(loads=tuple(self._loads), saves=tuple(self._saves))
        self._loads, self._saves = [], []
        return metadata

    def on_request_finished(self, request: ConnectorRequest, block_ids: Sequence[int]) -> bool:
        chain = self.session.chain
        if chain is None or self.role == "kv_consumer":
            return False
        # block_hashes covers the request's computed full blocks, in block-table order.
        pairs = [
            (block_hash, block_id)
            for block_hash, block_id in zip(request.block_hashes, block_ids, strict=False)
            if block_hash not in chain
        ]
        if not pairs:
            return False
        self._saves.append(
            BlockTransfer(
                request_id=request.request_id,
                block_hashes=tuple(block_hash for block_hash, _ in pairs),
                block_ids=tuple(block_id for _, block_id in pairs),
            )
        )
        return True

    def tier_stats(self) -> list[TierStats]:
        """Each tier's totals, highest tier first (empty before the worker side attached)."""
        chain = self.session.chain
        return [] if chain is None else chain.tier_stats()
