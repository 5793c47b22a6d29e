"""Fixtures for the engine-core tests: a sampling-params stand-in, request and scheduler
factories, and a fake model runner that keeps worker-side state and checks the KV it reads."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs
import pytest

from tenon.engine.block_pool import EvictionCallback
from tenon.engine.kv_cache_manager import KVCacheManager
from tenon.engine.request import Request
from tenon.engine.scheduler import Scheduler
from tenon.engine.scheduler_output import EngineCoreOutput, RunnerOutput, SchedulerOutput

TokenFunction = Callable[[str, int], int]


@attrs.frozen(kw_only=True)
class StubSamplingParams:
    """The fields of tenon.sampling.params.SamplingParams, with vLLM's defaults."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False
    max_tokens: int | None = 16
    min_tokens: int = 0
    logprobs: int | None = None
    prompt_logprobs: int | None = None


def default_token(request_id: str, position: int) -> int:
    """The fake model's next token: depends on the request and the position it is sampled at."""
    return 1000 + 10 * position + sum(request_id.encode()) % 7


@attrs.define
class _WorkerRequestState:
    token_ids: list[int]
    block_ids: list[int]
    num_computed_tokens: int


class FakeRunner:
    """Plays the worker: applies each SchedulerOutput diff to its own per-request state,
    "writes" KV for the scheduled tokens and checks every KV slot it reads.

    A KV slot holds the whole prefix ending at its token, which is what real KV depends on,
    so a wrong prefix-cache hit or a block shared by mistake fails the check. As on a GPU,
    the whole batch writes its KV before any request reads.
    """

    def __init__(self, block_size: int, token_function: TokenFunction = default_token) -> None:
        self.block_size = block_size
        self.token_function = token_function
        self.states: dict[str, _WorkerRequestState] = {}
        self.kv_slots: dict[tuple[int, int], tuple[int, ...]] = {}

    def execute(self, scheduler_output: SchedulerOutput) -> RunnerOutput:
        for request_id in scheduler_output.finished_request_ids:
            self.states.pop(request_id, None)
        for request_id in scheduler_output.preempted_request_ids:
            del self.states[request_id]
        for new in scheduler_output.scheduled_new_requests:
            assert new.request_id not in self.states
            self.states[new.request_id] = _WorkerRequestState(
                token_ids=[*new.prompt_token_ids, *new.output_token_ids],
                block_ids=list(new.block_ids),
                num_computed_tokens=new.num_computed_tokens,
            )
        for cached in scheduler_output.scheduled_cached_requests:
            state = self.states[cached.request_id]
            assert state.num_computed_tokens == cached.num_computed_tokens
            state.block_ids.extend(cached.new_block_ids)
        assert sum(scheduler_output.num_scheduled_tokens.values()) == (
            scheduler_output.total_num_scheduled_tokens
        )

        for request_id, num_tokens in scheduler_output.num_scheduled_tokens.items():
            state = self.states[request_id]
            end = state.num_computed_tokens + num_tokens
            assert end <= len(state.token_ids)
            assert len(state.block_ids) == -(-end // self.block_size)
            assert 0 not in state.block_ids, "the null block is never handed out"
            for position in range(state.num_computed_tokens, end):
                self.kv_slots[self._slot(state, position)] = tuple(state.token_ids[: position + 1])

        request_ids, sampled_token_ids = [], []
        for request_id, num_tokens in scheduler_output.num_scheduled_tokens.items():
            state = self.states[request_id]
            end = state.num_computed_tokens + num_tokens
            for position in range(end):
                assert self.kv_slots[self._slot(state, position)] == tuple(
                    state.token_ids[: position + 1]
                ), f"{request_id}: wrong KV at position {position}"
            state.num_computed_tokens = end
            sampled = []
            if end == len(state.token_ids):
                token_id = self.token_function(request_id, end)
                state.token_ids.append(token_id)
                sampled.append(token_id)
            request_ids.append(request_id)
            sampled_token_ids.append(sampled)
        return RunnerOutput(request_ids=request_ids, sampled_token_ids=sampled_token_ids)

    def step(self, scheduler: Scheduler) -> tuple[SchedulerOutput, list[EngineCoreOutput]]:
        scheduler_output = scheduler.schedule()
        runner_output = self.execute(scheduler_output)
        outputs = scheduler.update_from_output(scheduler_output, runner_output)
        for request_id, state in self.states.items():
            if request_id in scheduler.requests:
                assert state.block_ids == scheduler.kv_cache_manager.get_block_ids(request_id)
        return scheduler_output, outputs

    def run_to_completion(
        self, scheduler: Scheduler, max_num_steps: int = 1000
    ) -> dict[str, list[EngineCoreOutput]]:
        outputs_by_request: dict[str, list[EngineCoreOutput]] = {}
        for _ in range(max_num_steps):
            if not scheduler.has_unfinished_requests():
                return outputs_by_request
            _, outputs = self.step(scheduler)
            for output in outputs:
                outputs_by_request.setdefault(output.request_id, []).append(output)
        raise AssertionError(f"requests still unfinished after {max_num_steps} steps")

    def _slot(self, state: _WorkerRequestState, position: int) -> tuple[int, int]:
        return state.block_ids[position // self.block_size], position % self.block_size


def make_request(
    request_id: str,
    prompt_token_ids: Sequence[int],
    *,
    eos_token_id: int | None = None,
    **sampling_fields: object,
) -> Request:
    return Request(
        request_id,
        prompt_token_ids,
        StubSamplingParams(**sampling_fields),  # type: ignore[arg-type]
        eos_token_id=eos_token_id,
        arrival_time_s=0.0,
    )


def make_scheduler(
    *,
    num_blocks: int = 12,
    block_size: int = 4,
    enable_caching: bool = True,
    on_evict: EvictionCallback | None = None,
    max_num_seqs: int = 8,
    max_num_batched_tokens: int = 64,
    max_model_len: int = 32,
    **scheduler_options: object,
) -> Scheduler:
    manager = KVCacheManager(num_blocks, block_size, enable_caching, on_evict=on_evict)
    return Scheduler(
        manager,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_num_batched_tokens,
        max_model_len=max_model_len,
        **scheduler_options,
    )


@pytest.fixture
def request_factory() -> Callable[..., Request]:
    return make_request


@pytest.fixture
def scheduler_factory() -> Callable[..., Scheduler]:
    return make_scheduler


@pytest.fixture
def runner_factory() -> Callable[..., FakeRunner]:
    return FakeRunner
