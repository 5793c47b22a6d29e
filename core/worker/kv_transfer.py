"""The worker's half of KV transfer: calls a `KVConnectorWorker` around each step's forward.

    before_forward   start_load(step metadata), then wait_for_layer_load(l) for every layer:
                     the step's loads are in the KV cache before the forward reads it
    (the model runner's step: inputs, forward, sampling)
    after_forward    save_layer(l, kv_layers[l], attention metadata) for every layer, then
                     wait_for_save, finished_transfers and failed_block_ids -> KVConnectorOutput

The per-layer calls are made here, around the whole forward rather than inside it, so a
captured device graph replays unchanged; a connector still sees them layer by layer. Loads
block only the step that admits their requests. The worker holds None instead of this object
when no connector is configured, so nothing here runs on the hot path then.

A connector that raises while loading fails that step's loads: the scheduler recomputes their
requests (the same path as blocks reported in `failed_block_ids`). At shutdown `close` calls
the connector's own `close()` where it has one, so writes it queued (a disk tier's) finish.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import attrs
import torch

from tenon.engine.kv_connector_output import KVConnectorOutput
from tenon.engine.scheduler_output import RunnerOutput, SchedulerOutput
from tenon.spec.attention import AttentionMetadata
from tenon.spec.kv_connector import KVConnectorWorker

if TYPE_CHECKING:
    from tenon.worker.model_runner import ModelRunner

logger = logging.getLogger(__name__)


class KVTransferWorker:
    def __init__(
        self,
        connector: KVConnectorWorker,
        *,
        kv_cache: torch.Tensor,  # [num_blocks, num_layers, 2, block_size, heads, head_size]
        kv_layers: Sequence[torch.Tensor],  # kv_layers[l] = kv_cache[:, l]
        block_size: int,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.connector = connector
        self.kv_layers = list(kv_layers)
        self.clock = clock
        self._load_wait_s = 0.0
        self._load_error = False
        connector.register_kv_cache(kv_cache, block_size)

    def execute(self, runner: ModelRunner, scheduler_output: SchedulerOutput) -> RunnerOutput:
        """One step of `runner` with this step's loads before it and saves after it."""
        self.before_forward(scheduler_output)
        output = runner.execute(scheduler_output)
        ran = scheduler_output.total_num_scheduled_tokens > 0
        metadata = runner.last_attention_metadata if ran else None
        return attrs.evolve(output, kv_connector_output=self.after_forward(metadata))

    def before_forward(self, scheduler_output: SchedulerOutput) -> None:
        started_s = self.clock()
        self._load_error = False
        try:
            self.connector.start_load(scheduler_output.kv_connector_metadata)
            for layer_index in range(len(self.kv_layers)):
                self.connector.wait_for_layer_load(layer_index)
        except Exception:
            # Which blocks arrived is unknown, so every load of this step counts as failed.
            logger.exception("KV connector failed while loading; this step's loads are recomputed")
            self._load_error = True
        self._load_wait_s = self.clock() - started_s

    def after_forward(self, metadata: AttentionMetadata | None) -> KVConnectorOutput:
        """`metadata` is the step's attention metadata; None for a step that ran no forward
        (saves of finished requests still proceed)."""
        connector = self.connector
        started_s = self.clock()
        if metadata is not None:
            for layer_index, kv_layer in enumerate(self.kv_layers):
                connector.save_layer(layer_index, kv_layer, metadata)
        connector.wait_for_save()
        save_s = self.clock() - started_s
        finished_sending, finished_recving = connector.finished_transfers()
        return KVConnectorOutput(
            finished_sending=frozenset(finished_sending),
            finished_recving=frozenset(finished_recving),
            failed_block_ids=frozenset(connector.failed_block_ids()),
            all_loads_failed=self._load_error,
            load_wait_s=self._load_wait_s,
            save_s=save_s,
            stored_bytes=connector.take_stored_bytes(),
        )

    def close(self) -> None:
        """At shutdown: the connector's `close()`, where it has one (not part of the spec's
        interface), finishes the transfers it queued and stops its threads."""
        close = getattr(self.connector, "close", None)
        if callable(close):
            close()
