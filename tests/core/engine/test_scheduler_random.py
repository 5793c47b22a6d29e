"""A seeded random workload on a tiny KV cache, checked against each request run alone."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tenon.engine.request import Request
from tenon.engine.scheduler import Scheduler

RequestFactory = Callable[..., Request]
SchedulerFactory = Callable[..., Scheduler]
# Builds conftest's FakeRunner, which test modules cannot import by name.
RunnerFactory = Callable[..., Any]

EOS = 100


def sometimes_eos(request_id: str, position: int) -> int:
    return 100 + (position * 31 + sum(request_id.encode())) % 40


def make_workload(seed: int) -> list[tuple[str, list[int], dict[str, object]]]:
    rng = random.Random(seed)
    prefixes = [[rng.randrange(1, 90) for _ in range(length)] for length in (4, 8, 12)]
    workload = []
    for index in range(24):
        prefix = rng.choice([*prefixes, []])
        tail = [rng.randrange(1, 90) for _ in range(rng.randrange(1, 9))]
        options: dict[str, object] = {"max_tokens": rng.randrange(1, 11)}
        if rng.random() < 0.5:
            options["eos_token_id"] = EOS
        workload.append((f"req-{index}", [*prefix, *tail], options))
    return workload


def results_alone(
    workload: list[tuple[str, list[int], dict[str, object]]],
    request_factory: RequestFactory,
    scheduler_factory: SchedulerFactory,
    runner_factory: RunnerFactory,
) -> dict[str, tuple[list[int], str | None]]:
    """Each request's tokens and finish reason when it runs alone on a roomy cache."""
    expected = {}
    for request_id, prompt_token_ids, options in workload:
        alone = scheduler_factory(num_blocks=64, max_model_len=24)
        alone.add_request(request_factory(request_id, prompt_token_ids, **options))
        outputs = runner_factory(4, sometimes_eos).run_to_completion(alone)[request_id]
        expected[request_id] = ([t for o in outputs for t in o.new_token_ids], outputs[-1].finish_reason)
    return expected


def check_block_invariants(scheduler: Scheduler) -> None:
    manager = scheduler.kv_cache_manager
    pool = manager.block_pool
    holders: Counter[int] = Counter()
    for request_id in scheduler.requests:
        holders.update(manager.get_block_ids(request_id))
    assert 0 not in holders
    for block in pool.blocks:
        assert block.ref_count == holders[block.block_id]
    assert pool.num_free_blocks == sum(1 for block in pool.blocks[1:] if block.ref_count == 0)
    for block_hash, block in pool.cached_block_hash_to_block.items():
        assert block.block_hash == block_hash


@pytest.mark.parametrize(
    ("enable_caching", "enable_chunked_prefill", "max_num_batched_tokens"),
    [(True, True, 10), (False, True, 10), (True, False, 24)],
)
def test_random_workload_matches_requests_run_alone(
    request_factory: RequestFactory,
    scheduler_factory: SchedulerFactory,
    runner_factory: RunnerFactory,
    enable_caching: bool,
    enable_chunked_prefill: bool,
    max_num_batched_tokens: int,
) -> None:
    workload = make_workload(seed=11)
    expected = results_alone(workload, request_factory, scheduler_factory, runner_factory)

    # 8 usable blocks of 4 tokens, against requests that grow to 6 blocks each.
    scheduler = scheduler_factory(
        num_blocks=9,
        enable_caching=enable_caching,
        max_num_seqs=4,
        max_num_batched_tokens=max_num_batched_tokens,
        max_model_len=24,
        enable_chunked_prefill=enable_chunked_prefill,
    )
    runner = runner_factory(4, sometimes_eos)
    pending = list(workload)
    tokens: dict[str, list[int]] = {request_id: [] for request_id, _, _ in workload}
    finish_reasons = {}
    for _ in range(500):
        for request_id, prompt_token_ids, options in pending[:3]:
            scheduler.add_request(request_factory(request_id, prompt_token_ids, **options))
        pending = pending[3:]
        if not pending and not scheduler.has_unfinished_requests():
            break
        _, outputs = runner.step(scheduler)
        for output in outputs:
            tokens[output.request_id] += output.new_token_ids
            if output.is_finished:
                finish_reasons[output.request_id] = output.finish_reason
        check_block_invariants(scheduler)

    actual = {request_id: (tokens[request_id], finish_reasons[request_id]) for request_id in tokens}
    assert actual == expected
    assert {reason for _, reason in expected.values()} == {"stop", "length"}
    assert scheduler.num_preemptions_total > 0
    manager = scheduler.kv_cache_manager
    assert (manager.prefix_cache_hits_tokens > 0) == enable_caching
    pool = manager.block_pool
    assert [block.ref_count for block in pool.blocks] == [0] * pool.num_blocks
    assert manager.usage == 0.0


@pytest.mark.parametrize(
    ("enable_caching", "enable_chunked_prefill", "max_num_batched_tokens"),
    [(True, True, 10), (False, True, 10), (True, False, 24)],
)
def test_random_workload_with_asynchronous_scheduling(
    request_factory: RequestFactory,
    scheduler_factory: SchedulerFactory,
    runner_factory: RunnerFactory,
    enable_caching: bool,
    enable_chunked_prefill: bool,
    max_num_batched_tokens: int,
) -> None:
    """Step N+1 is scheduled and run before step N's tokens reach the scheduler, as the engine
    core does with asynchronous scheduling: the same tokens as each request alone, the KV the
    fake runner reads always right, every block back at the end, and preemptions (some while a
    request's last token is still in flight)."""
    workload = make_workload(seed=11)
    expected = results_alone(workload, request_factory, scheduler_factory, runner_factory)

    scheduler = scheduler_factory(
        num_blocks=9, enable_caching=enable_caching, max_num_seqs=4,
        max_num_batched_tokens=max_num_batched_tokens, max_model_len=24,
        enable_chunked_prefill=enable_chunked_prefill, async_scheduling=True,
    )  # fmt: skip
    runner = runner_factory(4, sometimes_eos)
    pending = list(workload)
    tokens: dict[str, list[int]] = {request_id: [] for request_id, _, _ in workload}
    finish_reasons = {}
    in_flight = None
    num_overlapped_steps = 0
    for _ in range(800):
        for request_id, prompt_token_ids, options in pending[:3]:
            scheduler.add_request(request_factory(request_id, prompt_token_ids, **options))
        pending = pending[3:]
        if not pending and not scheduler.has_unfinished_requests() and in_flight is None:
            break
        scheduler_output = scheduler.schedule()
        runner_output = runner.execute(scheduler_output)  # "launched": its tokens come later
        outputs = []
        if in_flight is not None:
            num_overlapped_steps += 1
            outputs = scheduler.update_from_output(*in_flight)
        in_flight = None
        if scheduler_output.total_num_scheduled_tokens:
            in_flight = (scheduler_output, runner_output)
        else:
            outputs += scheduler.update_from_output(scheduler_output, runner_output)
        for output in outputs:
            tokens[output.request_id] += output.new_token_ids
            if output.is_finished:
                finish_reasons[output.request_id] = output.finish_reason
        check_block_invariants(scheduler)

    actual = {request_id: (tokens[request_id], finish_reasons[request_id]) for request_id in tokens}
    assert actual == expected
    assert num_overlapped_steps > 50
    assert scheduler.num_preemptions_total > 0
    assert all(request.num_output_placeholders == 0 for request in scheduler.requests.values())
    manager = scheduler.kv_cache_manager
    assert [block.ref_count for block in manager.block_pool.blocks] == [0] * manager.block_pool.num_blocks
    assert manager.usage == 0.0
