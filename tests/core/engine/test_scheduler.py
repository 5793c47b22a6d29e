"""Scheduling policy: chunked prefill, continuous batching, prefix sharing and preemption."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tenon.engine.request import Request, RequestStatus
from tenon.engine.scheduler import Scheduler
from tenon.engine.scheduler_output import SchedulerOutput

RequestFactory = Callable[..., Request]
SchedulerFactory = Callable[..., Scheduler]
# Builds conftest's FakeRunner, which test modules cannot import by name.
RunnerFactory = Callable[..., Any]


def assert_every_block_free(scheduler: Scheduler) -> None:
    pool = scheduler.kv_cache_manager.block_pool
    assert [block.ref_count for block in pool.blocks] == [0] * pool.num_blocks
    assert pool.num_free_blocks == pool.num_blocks - 1
    assert scheduler.kv_cache_manager.usage == 0.0


def test_prefill_then_decode_to_max_tokens(
    request_factory: RequestFactory,
    scheduler_factory: SchedulerFactory,
    runner_factory: RunnerFactory,
) -> None:
    scheduler = scheduler_factory()
    runner = runner_factory(4)
    scheduler.add_request(request_factory("a", [1, 2, 3, 4, 5, 6], max_tokens=3))

    output, outputs = runner.step(scheduler)
    assert output.num_scheduled_tokens == {"a": 6}
    [new] = output.scheduled_new_requests
    assert (new.block_ids, new.num_computed_tokens, new.output_token_ids) == ([1, 2], 0, [])
    assert [(o.new_token_ids, o.finish_reason) for o in outputs] == [([1066], None)]

    output, outputs = runner.step(scheduler)
    [cached] = output.scheduled_cached_requests
    assert (cached.new_block_ids, cached.num_computed_tokens) == ([], 6)
    assert [(o.new_token_ids, o.finish_reason) for o in outputs] == [([1076], None)]

    output, outputs = runner.step(scheduler)
    assert [(o.new_token_ids, o.finish_reason) for o in outputs] == [([1086], "length")]
    assert not scheduler.has_unfinished_requests()
    assert scheduler.has_finished_requests()
    assert_every_block_free(scheduler)

    output = scheduler.schedule()
    assert output.finished_request_ids == {"a"}
    assert output.total_num_scheduled_tokens == 0
    assert scheduler.schedule().finished_request_ids == set()


def test_chunked_prefill_splits_a_long_prompt_under_a_small_budget(
    request_factory: RequestFactory,
    scheduler_factory: SchedulerFactory,
    runner_factory: RunnerFactory,
) -> None:
    scheduler = scheduler_factory(max_num_batched_tokens=4)
    runner = runner_factory(4)
    scheduler.add_request(request_factory("a", list(range(3)), max_tokens=4))
    scheduler.add_request(request_factory("b", list(range(50, 60)), max_tokens=2))
    steps = []
    for _ in range(5):
        output, outputs = runner.step(scheduler)
        steps.append(
            (output.num_scheduled_tokens, {o.request_id: o.new_token_ids for o in outputs})
        )
    # "a" decodes every step; "b" gets the rest of the budget until its prompt is done.
    assert steps == [
        ({"a": 3, "b": 1}, {"a": [1036]}),
        ({"a": 1, "b": 3}, {"a": [1046]}),
        ({"a": 1, "b": 3}, {"a": [1056]}),
        ({"a": 1, "b": 3}, {"a": [1066], "b": [1100]}),
        ({"b": 1}, {"b": [1110]}),
    ]
    assert not scheduler.has_unfinished_requests()
    assert_every_block_free(scheduler)


def test_long_prefill_token_threshold_caps_each_chunk(
    request_factory: RequestFactory,
    scheduler_factory: SchedulerFactory,
    runner_factory: RunnerFactory,
) -> None:
    scheduler = scheduler_factory(long_prefill_token_threshold=3)
    runner = runner_factory(4)
    scheduler.add_request(request_factory("a", list(range(10)), max_tokens=1))
    scheduler.add_request(request_factory("b", [7, 8], max_tokens=1))
    scheduled = [runner.step(scheduler)[0].num_scheduled_tokens for _ in range(4)]
    assert scheduled == [{"a": 3, "b": 2}, {"a": 3}, {"a": 3}, {"a": 1}]


def test_without_chunked_prefill_a_prompt_waits_for_room(
    request_factory: RequestFactory,
    scheduler_factory: SchedulerFactory,
    runner_factory: RunnerFactory,
) -> None:
    scheduled = {}
    for chunked in (False, True):
        scheduler = scheduler_factory(
            max_num_batched_tokens=8, max_model_len=8, enable_chunked_prefill=chunked
        )
        runner = runner_factory(4)
        scheduler.add_request(request_factory("a", list(range(6))))
        scheduler.add_request(request_factory("b", list(range(20, 24))))
        scheduled[chunked] = [runner.step(scheduler)[0].num_scheduled_tokens for _ in range(2)]
    assert scheduled[False] == [{"a": 6}, {"a": 1, "b": 4}]
    assert scheduled[True] == [{"a": 6, "b": 2}, {"a": 1, "b": 2}]


def test_continuous_batching_admits_as_requests_finish(
    request_factory: RequestFactory,
    scheduler_factory: SchedulerFactory,
    runner_factory: RunnerFactory,
) -> None:
    scheduler = scheduler_factory(max_num_seqs=2)
    runner = runner_factory(4)
    for request_id, max_tokens in (("a", 2), ("b", 4), ("c", 2)):
        scheduler.add_request(request_factory(request_id, [1, 2, 3, 4], max_tokens=max_tokens))
    steps = []
    while scheduler.has_unfinished_requests() or scheduler.has_finished_requests():
        output, outputs = runner.step(scheduler)
        steps.append(
            (
                output.num_scheduled_tokens,
                [new.request_id for new in output.scheduled_new_requests],
                output.finished_request_ids,
                [o.request_id for o in outputs if o.is_finished],
            )
        )
    assert steps == [
        ({"a": 4, "b": 4}, ["a", "b"], set(), []),
        ({"a": 1, "b": 1}, [], set(), ["a"]),
        ({"b": 1, "c": 4}, ["c"], {"a"}, []),
        ({"b": 1, "c": 1}, [], set(), ["b", "c"]),
        ({}, [], {"b", "c"}, []),
    ]
    assert_every_block_free(scheduler)


def test_second_request_shares_three_cached_blocks(
    request_factory: RequestFactory,
    scheduler_factory: SchedulerFactory,
    runner_factory: RunnerFactory,
) -> None:
    scheduler = scheduler_factory()
    runner = runner_factory(4)
    shared = list(range(12))
    scheduler.add_request(request_factory("a", [*shared, 90, 91], max_tokens=3))
    runner.step(scheduler)
    scheduler.add_request(request_factory("b", [*shared, 80], max_tokens=2))
    output, outputs = runner.step(scheduler)
    [new] = output.scheduled_new_requests
    assert (new.block_ids, new.num_computed_tokens) == ([1, 2, 3, 5], 12)
    assert output.num_scheduled_tokens == {"a": 1, "b": 1}
    pool = scheduler.kv_cache_manager.block_pool
    assert [pool.blocks[i].ref_count for i in range(1, 6)] == [2, 2, 2, 1, 1]
    assert {o.request_id: o.num_cached_tokens for o in outputs} == {"a": 0, "b": 12}
    assert scheduler.requests["b"].num_cached_tokens == 12
    manager = scheduler.kv_cache_manager
    assert (manager.prefix_cache_queries_tokens, manager.prefix_cache_hits_tokens) == (27, 12)
    runner.run_to_completion(scheduler)
    assert_every_block_free(scheduler)


def test_preempted_request_is_recomputed_and_finishes(
    request_factory: RequestFactory,
    scheduler_factory: SchedulerFactory,
    runner_factory: RunnerFactory,
) -> None:
    evictions: list[list[tuple[bytes, int]]] = []
    # 4 usable blocks of 4 tokens; each request grows to 11 KV tokens (3 blocks). Without KV
    # reservation (vLLM's policy) both start and the cache runs out.
    scheduler = scheduler_factory(num_blocks=5, on_evict=evictions.append, schedule_conservativeness=0.0)
    runner = runner_factory(4)
    scheduler.add_request(request_factory("a", [1, 2, 3, 4], max_tokens=8))
    scheduler.add_request(request_factory("b", [5, 6, 7, 8], max_tokens=8))
    b = scheduler.requests["b"]
    b_hashes_before_preemption: list[bytes] = []
    steps: list[SchedulerOutput] = []
    outputs_by_request: dict[str, list[int]] = {"a": [], "b": []}
    while scheduler.has_unfinished_requests():
        if len(steps) == 5:
            b_hashes_before_preemption = list(b.block_hashes)
        output, outputs = runner.step(scheduler)
        steps.append(output)
        for o in outputs:
            outputs_by_request[o.request_id] += o.new_token_ids

    # Step 6: "a" needs its third block with none free, so the last running request goes.
    assert [sorted(o.preempted_request_ids) for o in steps] == [[]] * 5 + [["b"]] + [[]] * 5
    assert [o.num_scheduled_tokens for o in steps[5:]] == [
        {"a": 1},
        {"a": 1},  # "b" waits: its hit block plus two fresh ones do not fit
        {"a": 1},
        {"b": 5},  # "a" finished and freed; "b" recomputes past its one surviving block
        {"b": 1},
        {"b": 1},
    ]
    [resumed] = steps[8].scheduled_new_requests
    assert resumed.output_token_ids == [1040, 1050, 1060, 1070, 1080]
    assert (resumed.num_computed_tokens, resumed.block_ids) == (4, [2, 4, 3])
    assert (b.num_preemptions, scheduler.num_preemptions_total, b.num_cached_tokens) == (1, 1, 0)
    # "a" took b's tail block 4 first (freed tail first), evicting b's second full block.
    assert evictions[0] == [(b_hashes_before_preemption[1], 4)]

    # Same tokens as with a pool large enough never to preempt.
    reference_scheduler = scheduler_factory(num_blocks=12)
    reference_scheduler.add_request(request_factory("a", [1, 2, 3, 4], max_tokens=8))
    reference_scheduler.add_request(request_factory("b", [5, 6, 7, 8], max_tokens=8))
    reference = runner_factory(4).run_to_completion(reference_scheduler)
    assert reference_scheduler.num_preemptions_total == 0
    for request_id in ("a", "b"):
        expected = [t for o in reference[request_id] for t in o.new_token_ids]
        assert outputs_by_request[request_id] == expected
        assert len(expected) == 8
    assert b.status is RequestStatus.FINISHED_LENGTH
    assert_every_block_free(scheduler)


def test_request_preempts_itself_when_it_is_the_last_running(
    request_factory: RequestFactory,
    scheduler_factory: SchedulerFactory,
    runner_factory: RunnerFactory,
) -> None:
    # 3 usable blocks: "a" (prompt 6) holds 2, "b" (prompt 4) holds 1. When "b" needs a
    # second block none is free, and "b" itself is the last running request.
    scheduler = scheduler_factory(num_blocks=4, schedule_conservativeness=0.0)
    runner = runner_factory(4)
    scheduler.add_request(request_factory("a", list(range(6)), max_tokens=2))
    scheduler.add_request(request_factory("b", [5, 6, 7, 8], max_tokens=4))
    runner.step(scheduler)
    output, _ = runner.step(scheduler)
    assert output.preempted_request_ids == {"b"}
    assert output.num_scheduled_tokens == {"a": 1}
    assert scheduler.requests["b"].status is RequestStatus.PREEMPTED
    assert (scheduler.num_waiting, scheduler.num_running) == (1, 0), "a finished this step"
    output, _ = runner.step(scheduler)
    [resumed] = output.scheduled_new_requests
    assert (resumed.request_id, resumed.output_token_ids) == ("b", [1040])
    assert resumed.num_computed_tokens == 4, "its prompt block survived in the prefix cache"
    runner.run_to_completion(scheduler)
    assert scheduler.num_preemptions_total == 1
    assert_every_block_free(scheduler)


def test_preempted_request_goes_back_to_the_front_of_the_queue(
    request_factory: RequestFactory,
    scheduler_factory: SchedulerFactory,
    runner_factory: RunnerFactory,
) -> None:
    scheduler = scheduler_factory(num_blocks=5, max_num_seqs=2, schedule_conservativeness=0.0)
    runner = runner_factory(4)
    scheduler.add_request(request_factory("a", [1, 2, 3, 4], max_tokens=8))
    scheduler.add_request(request_factory("b", [5, 6, 7, 8], max_tokens=8))
    scheduler.add_request(request_factory("c", [9, 10, 11, 12], max_tokens=1))
    steps = [runner.step(scheduler)[0] for _ in range(6)]
    assert steps[5].preempted_request_ids == {"b"}
    assert [request.request_id for request in scheduler.waiting] == ["b", "c"]
    steps += [runner.step(scheduler)[0] for _ in range(3)]
    # "c" would fit after the preemption, but "b" is ahead of it and waits for room first.
    assert [step.num_scheduled_tokens for step in steps[5:]] == [
        {"a": 1},
        {"a": 1},
        {"a": 1},
        {"b": 5, "c": 4},
    ]
