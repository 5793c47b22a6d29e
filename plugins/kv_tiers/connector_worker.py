"""The OffloadingConnector's worker side: copies whole blocks between the KV cache and the tiers.

Per step, in `start_load` (before the forward):
1. saves: blocks of finished requests (held for them) go to the tiers; the CPU tier copies
   them synchronously, the disk tier takes a host copy and writes it in the background, so
   the save is reported done at once and the scheduler frees the blocks after this step.
2. loads: `chain.load` into the blocks just allocated to admitted requests; the CPU tier's
   copies are issued on the compute stream, the disk tier reads on its own thread.
`wait_for_layer_load(0)` waits for every load of the step (a block holds every layer, so the
first layer needs them all) and collects the blocks that failed: those are reported through
`failed_block_ids`, and the scheduler recomputes from the first of them.
`save_layer` and `wait_for_save` do nothing: blocks are saved whole, from finished requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from tenon.plugins.kv_tiers.chain import TierChain
from tenon.plugins.kv_tiers.connector_metadata import BlockTransfer, OffloadingStepMetadata
from tenon.plugins.kv_tiers.offloading_config import session_of
from tenon.spec.attention import AttentionMetadata
from tenon.spec.kv_connector import KVConnectorWorker


class OffloadingConnectorWorker(KVConnectorWorker):
    def __init__(self, *, role: str, extra_config: Mapping[str, Any]) -> None:
        super().__init__(role=role, extra_config=extra_config)
        self.session = session_of(extra_config)
        self._chain: TierChain | None = None
        self._kv_cache: torch.Tensor | None = None
        self._block_bytes = 0
        self._loading: dict[int, BlockTransfer] = {}  # chain transfer id -> its load
        self._finished_sending: set[str] = set()
        self._finished_recving: set[str] = set()
        self._failed_block_ids: set[int] = set()
        self._stored_bytes = 0

    def register_kv_cache(self, kv_cache: torch.Tensor, block_size: int) -> None:
        # kv_cache: [num_blocks, num_layers, 2, block_size, heads, head_size]; kv_cache[b] is
        # block b, contiguous, whatever the layout's inner dimensions are.
        self._kv_cache = kv_cache
        self._block_bytes = kv_cache[0].numel() * kv_cache.element_size()
        self._chain = self.session.attach(kv_cache)

    def start_load(self, step_metadata: Any) -> None:
        if step_metadata is None:
            return
        assert isinstance(step_metadata, OffloadingStepMetadata)
        chain, kv_cache = self._chain, self._kv_cache
        assert chain is not None and kv_cache is not None, "register_kv_cache first"
        for save in step_metadata.saves:
            chain.store(list(zip(save.block_hashes, (kv_cache[b] for b in save.block_ids),
                                 strict=True)))
            self._finished_sending.add(save.request_id)
            self._stored_bytes += len(save.block_ids) * self._block_bytes
        for load in step_metadata.loads:
            transfer_id = chain.load(load.block_hashes, [kv_cache[b] for b in load.block_ids])
            self._loading[transfer_id] = load

    def wait_for_layer_load(self, layer_index: int) -> None:
        if not self._loading:
            return
        chain = self._chain
        assert chain is not None
        chain.wait(self._loading)
        for result in chain.poll():
            load = self._loading.pop(result.transfer_id, None)
            if load is None:
                continue  # a store's result: failures are counted by the tiers
            block_of = dict(zip(load.block_hashes, load.block_ids, strict=True))
            self._failed_block_ids.update(block_of[h] for h in result.failed_hashes)
            self._finished_recving.add(load.request_id)
        assert not self._loading, "chain.wait returned before the step's loads finished"

    def save_layer(
        self, layer_index: int, kv_layer: torch.Tensor, metadata: AttentionMetadata
    ) -> None:
        pass  # blocks are saved whole when their request finishes (start_load)

    def wait_for_save(self) -> None:
        pass  # saves finish inside start_load

    def finished_transfers(self) -> tuple[set[str], set[str]]:
        sending, self._finished_sending = self._finished_sending, set()
        recving, self._finished_recving = self._finished_recving, set()
        return sending, recving

    def failed_block_ids(self) -> set[int]:
        failed, self._failed_block_ids = self._failed_block_ids, set()
        return failed

    def take_stored_bytes(self) -> int:
        """Bytes handed to the tiers since the last call (`tenon.worker.kv_transfer`)."""
        stored, self._stored_bytes = self._stored_bytes, 0
        return stored

    def close(self) -> None:
        """Finish queued disk writes and stop the tiers' threads."""
        self.session.close()
