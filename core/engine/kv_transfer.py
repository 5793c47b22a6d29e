"""The scheduler's half of KV transfer: the engine core's glue around a `KVConnectorScheduler`.

One step with a connector (loads are synchronous within the step that admits the request):

    schedule()   local prefix hit ─> num_external_tokens ─> allocate hit + external + new blocks
                 ─> on_allocated ─> ... ─> build_step_metadata ──> SchedulerOutput
    worker       start_load ─> wait_for_layer_load(every layer) ─> forward ─> save_layer(every
                 layer) ─> wait_for_save ─> finished_transfers, failed_block_ids ──> RunnerOutput
    update()     failed loads: their requests go back to the waiting queue and recompute from
                 the first failed block; finished saves: the blocks kept for them are freed

External tokens count as computed, like a local prefix hit (`num_cached_tokens` covers both).
Blocks receiving a load, and every block the request fills in that step, stay out of the
prefix cache until the next step, when the load is known to be good: a failed load can only
poison its own request, and that request is recomputed before anyone else can read them.
Without a configured connector the scheduler holds None instead of this object and pays nothing.
A connector whose scheduler side has `tier_stats()` (the offloading connector's CPU and disk
tiers) has its per-tier totals passed on to `EngineStats.kv_tier_stats` (`tier_stats` below).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from tenon.engine.block_hash import update_block_hashes
from tenon.engine.kv_cache_manager import KVCacheManager
from tenon.engine.kv_connector_output import KVConnectorOutput
from tenon.engine.kv_tier_stats import TierStats, as_tier_stats
from tenon.engine.request import Request
from tenon.spec.kv_connector import ConnectorRequest, KVConnectorScheduler

if TYPE_CHECKING:
    from tenon.engine.core import Executor
    from tenon.engine.scheduler import Scheduler

logger = logging.getLogger(__name__)


@attrs.define
class KVTransferCounters:
    """Totals since start, named as the `EngineStats` fields that carry them."""

    kv_connector_queried_tokens_total: int = 0  # prompt tokens past the local hit looked up
    kv_connector_hit_tokens_total: int = 0  # of those, tokens the connector supplied
    kv_connector_load_bytes_total: int = 0
    kv_connector_store_bytes_total: int = 0  # as reported by the worker side
    kv_connector_load_seconds_total: float = 0.0  # time steps waited for their loads
    kv_connector_load_steps_total: int = 0  # steps that loaded something
    kv_connector_store_seconds_total: float = 0.0  # request finished -> its save reported done
    kv_connector_stores_total: int = 0  # requests whose saves finished
    kv_connector_failed_blocks_total: int = 0  # blocks whose loads failed (then recomputed)
    kv_connector_recomputed_requests_total: int = 0


@attrs.frozen
class _StepLoad:
    first_block_index: int  # where the loaded blocks start in the request's block table
    block_ids: tuple[int, ...]


class KVTransferScheduler:
    def __init__(
        self,
        connector: KVConnectorScheduler,
        kv_cache_manager: KVCacheManager,
        *,
        block_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connector = connector
        self.kv_cache_manager = kv_cache_manager
        self.block_size = kv_cache_manager.block_size
        self.block_bytes = block_bytes
        self.clock = clock
        self.counters = KVTransferCounters()
        # Loads the metadata being built will describe, then those of the step being run.
        self._pending_loads: dict[str, _StepLoad] = {}
        self._step_loads: dict[str, _StepLoad] = {}
        # After a failed load: the token where the request's first failed block starts; it
        # takes external tokens only below it from then on, so a bad block is never retried.
        self._external_limit_tokens: dict[str, int] = {}
        self._queried_tokens: dict[str, int] = {}
        # Finished requests whose blocks stay allocated until the worker reports their save.
        self._held: dict[str, tuple[Request, float]] = {}
        self._tier_stats_failed = False  # logged once: stats are read twice a second

    def has_pending_transfers(self) -> bool:
        return bool(self._held)

    @property
    def step_loads(self) -> dict[str, tuple[int, ...]]:
        """The loads of the step being run: request id -> the block ids loaded into."""
        return {request_id: load.block_ids for request_id, load in self._step_loads.items()}

    @property
    def num_pending_transfers(self) -> int:
        """Finished requests whose blocks are kept until their saves finish."""
        return len(self._held)

    def tier_stats(self) -> tuple[TierStats, ...]:
        """The connector's per-tier totals, highest tier first; empty when it has no
        `tier_stats()` (or it failed: metrics never stop the engine)."""
        report = getattr(self.connector, "tier_stats", None)
        if not callable(report):
            return ()
        try:
            return tuple(as_tier_stats(record) for record in report())
        except Exception:
            if not self._tier_stats_failed:
                logger.exception("KV connector tier_stats() failed; tier metrics are left out")
                self._tier_stats_failed = True
            return ()

    def num_external_tokens(self, request: Request, num_computed_tokens: int) -> int:
        """Tokens after the local hit the connector will load: whole blocks, never the last
        token, never at or past a block that failed to load for this request."""
        assert num_computed_tokens % self.block_size == 0, "local hits are whole blocks"
        if request.skip_reading_prefix_cache:
            return 0  # prompt logprobs need every position computed
        limit_tokens = (request.num_tokens - 1) // self.block_size * self.block_size
        failed_limit = self._external_limit_tokens.get(request.request_id)
        if failed_limit is not None:
            limit_tokens = min(limit_tokens, failed_limit)
        if limit_tokens <= num_computed_tokens:
            return 0
        self._queried_tokens[request.request_id] = limit_tokens - num_computed_tokens
        try:
            offered = self.connector.num_external_tokens(self._view(request), num_computed_tokens)
        except Exception:
            # A store that cannot answer supplies nothing: the request computes its tokens.
            logger.exception("KV connector lookup failed for %s; computing it", request.request_id)
            return 0
        offered = offered // self.block_size * self.block_size
        return max(0, min(offered, limit_tokens - num_computed_tokens))

    def on_allocated(self, request: Request, num_computed_tokens: int, num_external_tokens: int) -> None:
        """After admission: the connector gets the blocks up to the end of the external tokens;
        the last `num_external_tokens // block_size` of them are the ones to load into."""
        end_block = (num_computed_tokens + num_external_tokens) // self.block_size
        block_ids = self.kv_cache_manager.get_block_ids(request.request_id)[:end_block]
        self.connector.on_allocated(self._view(request), block_ids, num_external_tokens)
        counters = self.counters
        counters.kv_connector_queried_tokens_total += self._queried_tokens.pop(request.request_id, 0)
        if num_external_tokens:
            first = num_computed_tokens // self.block_size
            self._pending_loads[request.request_id] = _StepLoad(first, tuple(block_ids[first:]))
            counters.kv_connector_hit_tokens_total += num_external_tokens

    def build_step_metadata(self) -> object:
        self._step_loads, self._pending_loads = self._pending_loads, {}
        return self.connector.build_step_metadata()

    def on_request_finished(self, request: Request) -> bool:
        """Tell the connector; True when it keeps the request's blocks until the save is done
        (the caller must then not free them)."""
        request_id = request.request_id
        self._external_limit_tokens.pop(request_id, None)
        self._queried_tokens.pop(request_id, None)
        self._pending_loads.pop(request_id, None)
        num_computed_blocks = request.num_computed_tokens // self.block_size
        self._update_hashes(request)
        view = ConnectorRequest(
            request_id=request_id,
            token_ids=tuple(request.all_token_ids[: request.num_computed_tokens]),
            block_hashes=tuple(request.block_hashes[:num_computed_blocks]),
            block_size=self.block_size,
        )
        block_ids = self.kv_cache_manager.get_block_ids(request_id)
        keep = bool(self.connector.on_request_finished(view, block_ids)) and bool(block_ids)
        if keep:
            self._held[request_id] = (request, self.clock())
        return keep

    def process_output(self, output: KVConnectorOutput | None) -> set[str]:
        """Free the blocks of finished saves and count; returns the requests whose loads
        failed this step (the caller recomputes them)."""
        loads, self._step_loads = self._step_loads, {}
        if output is None:
            return set()
        counters = self.counters
        now = self.clock()
        for request_id in output.finished_sending:
            held = self._held.pop(request_id, None)
            if held is None:
                continue  # not a request whose blocks we kept (or reported twice)
            request, finished_at = held
            self.kv_cache_manager.free(request)
            counters.kv_connector_store_seconds_total += now - finished_at
            counters.kv_connector_stores_total += 1
        counters.kv_connector_store_bytes_total += output.stored_bytes
        if loads:
            counters.kv_connector_load_steps_total += 1
            counters.kv_connector_load_seconds_total += output.load_wait_s
        failed = output.failed_block_ids
        recompute: set[str] = set()
        matched: set[int] = set()
        for request_id, load in loads.items():
            bad = [
                index for index, block_id in enumerate(load.block_ids)
                if output.all_loads_failed or block_id in failed
            ]
            counters.kv_connector_load_bytes_total += (len(load.block_ids) - len(bad)) * self.block_bytes
            if bad:
                matched.update(load.block_ids[index] for index in bad)
                # Readmitted, it takes external tokens only below its first failed block.
                restart_tokens = (load.first_block_index + bad[0]) * self.block_size
                self._external_limit_tokens[request_id] = restart_tokens
                recompute.add(request_id)
        counters.kv_connector_failed_blocks_total += len(matched)
        counters.kv_connector_recomputed_requests_total += len(recompute)
        if failed - matched:
            logger.warning(
                "KV connector reported failed loads for blocks %s, which no load of this step "
                "wrote; ignored", sorted(failed - matched),
            )
        return recompute

    def _update_hashes(self, request: Request) -> None:
        # The cache manager hashes only with prefix caching on; the connector always needs them.
        update_block_hashes(
            request.block_hashes, request.all_token_ids, self.block_size,
            self.kv_cache_manager.hash_extra_keys,
        )

    def _view(self, request: Request) -> ConnectorRequest:
        self._update_hashes(request)
        return ConnectorRequest(
            request_id=request.request_id,
            token_ids=tuple(request.all_token_ids),
            block_hashes=tuple(request.block_hashes),
            block_size=self.block_size,
        )


def finish_pending_transfers(
    scheduler: Scheduler, executor: Executor, *, timeout_s: float = 60.0, poll_s: float = 0.001
) -> None:
    """Run transfer-only steps until the saves of finished requests are done, so an engine
    that goes idle (or a producer about to exit) leaves its KV stored. Gives up with a warning
    after `timeout_s`; the blocks then stay kept until later steps see the saves finish."""
    transfer = scheduler.kv_transfer
    assert transfer is not None
    deadline_s = time.monotonic() + timeout_s
    while transfer.has_pending_transfers() and not scheduler.has_unfinished_requests():
        if time.monotonic() > deadline_s:
            logger.warning(
                "KV connector saves for %d finished requests did not finish within %.0f s; "
                "their blocks stay allocated until they do", transfer.num_pending_transfers,
                timeout_s,
            )
            return
        scheduler_output = scheduler.schedule()
        scheduler.update_from_output(scheduler_output, executor.execute(scheduler_output))
        if transfer.has_pending_transfers():
            time.sleep(poll_s)
