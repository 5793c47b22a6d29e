"""The engine core: schedule, execute, update. No torch here; the executor owns the devices."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import attrs

from tenon.engine.kv_tier_stats import TierStats
from tenon.engine.kv_transfer import finish_pending_transfers
from tenon.engine.request import Request
from tenon.engine.scheduler import Scheduler
from tenon.engine.scheduler_output import EngineCoreOutput, RunnerOutput, SchedulerOutput


class StepHandle(Protocol):
    """A launched step; `result()` waits for its tokens."""

    @property
    def resolved(self) -> bool: ...

    def result(self) -> RunnerOutput: ...


class Executor(Protocol):
    """Runs a scheduled step on the workers (in process for now)."""

    def execute(self, scheduler_output: SchedulerOutput) -> RunnerOutput: ...

    def launch(self, scheduler_output: SchedulerOutput) -> StepHandle: ...

    def shutdown(self) -> None: ...


@attrs.frozen(kw_only=True)
class EngineStats:
    """A snapshot for metrics and logs (names as vLLM's metrics)."""

    num_requests_running: int
    num_requests_waiting: int
    kv_cache_usage_perc: float  # 0 to 1
    num_preemptions_total: int
    prefix_cache_queries_total: int  # tokens looked up
    prefix_cache_hits_total: int  # tokens found
    # KV connector totals (tenon.engine.kv_transfer.KVTransferCounters); zero without one.
    kv_connector_queried_tokens_total: int = 0
    kv_connector_hit_tokens_total: int = 0
    kv_connector_load_bytes_total: int = 0
    kv_connector_store_bytes_total: int = 0
    kv_connector_load_seconds_total: float = 0.0
    kv_connector_load_steps_total: int = 0
    kv_connector_store_seconds_total: float = 0.0
    kv_connector_stores_total: int = 0
    kv_connector_failed_blocks_total: int = 0
    kv_connector_recomputed_requests_total: int = 0
    # Per tier, highest first, from a connector with tiers (`tier_stats()`); empty otherwise.
    kv_tier_stats: tuple[TierStats, ...] = ()


class EngineCore:
    def __init__(self, scheduler: Scheduler, executor: Executor) -> None:
        self.scheduler = scheduler
        self.executor = executor
        # Asynchronous scheduling: the launched step whose tokens are not processed yet.
        self._in_flight: tuple[SchedulerOutput, StepHandle] | None = None

    def add_request(self, request: Request) -> None:
        self.scheduler.add_request(request)

    def abort_requests(self, request_ids: Iterable[str]) -> None:
        self.scheduler.abort_requests(request_ids)

    def has_work(self) -> bool:
        """Whether a step would do anything (unfinished requests, or finishes to tell)."""
        scheduler = self.scheduler
        return (
            scheduler.has_unfinished_requests()
            or scheduler.has_finished_requests()
            or scheduler.has_pending_kv_transfers()
            or self._in_flight is not None
        )

    def step(self) -> list[EngineCoreOutput]:
        """One engine step. With asynchronous scheduling: schedule and launch step N, then
        process step N-1's tokens while N runs on the device; returns N-1's outputs."""
        if self.scheduler.async_scheduling:
            return self._step_async()
        scheduler_output = self.scheduler.schedule()
        runner_output = self.executor.execute(scheduler_output)
        outputs = self.scheduler.update_from_output(scheduler_output, runner_output)
        if self.scheduler.has_pending_kv_transfers() and not self.scheduler.has_unfinished_requests():
            finish_pending_transfers(self.scheduler, self.executor)  # idle: store before waiting
        return outputs

    def _step_async(self) -> list[EngineCoreOutput]:
        scheduler_output = self.scheduler.schedule()
        launched = self.executor.launch(scheduler_output)
        outputs: list[EngineCoreOutput] = []
        previous, self._in_flight = self._in_flight, None
        if previous is not None:
            outputs = self.scheduler.update_from_output(previous[0], previous[1].result())
        if scheduler_output.total_num_scheduled_tokens:
            self._in_flight = (scheduler_output, launched)
        else:  # nothing ran: finish its bookkeeping now rather than keep the engine busy
            outputs += self.scheduler.update_from_output(scheduler_output, launched.result())
        return outputs

    def stats(self) -> EngineStats:
        manager = self.scheduler.kv_cache_manager
        transfer = self.scheduler.kv_transfer
        counters = attrs.asdict(transfer.counters) if transfer is not None else {}
        tier_stats = transfer.tier_stats() if transfer is not None else ()
        return EngineStats(
            num_requests_running=self.scheduler.num_running,
            num_requests_waiting=self.scheduler.num_waiting,
            kv_cache_usage_perc=manager.usage,
            num_preemptions_total=self.scheduler.num_preemptions_total,
            prefix_cache_queries_total=manager.prefix_cache_queries_tokens,
            prefix_cache_hits_total=manager.prefix_cache_hits_tokens,
            kv_tier_stats=tier_stats,
            **counters,
        )

    def shutdown(self) -> None:
        self.executor.shutdown()
