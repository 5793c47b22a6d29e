"""KV reservation at admission (`tenon.engine.admission`): requests wait rather than start and
be preempted; ignore_eos requests reserve their whole length; the new-token ratio's schedule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tenon.engine.admission import (
    CLIP_OUTPUTS_ESTIMATE,
    KVReservation,
    NewTokenRatio,
    expected_kv_tokens,
)
from tenon.engine.request import Request
from tenon.engine.scheduler import Scheduler
from tenon.engine_args import EngineArgs

RequestFactory = Callable[..., Request]
SchedulerFactory = Callable[..., Scheduler]
RunnerFactory = Callable[..., Any]


def test_new_token_ratio_decays_to_its_floor_and_resets_on_preemption() -> None:
    ratio = NewTokenRatio.for_conservativeness(1.0)
    assert (ratio.init, ratio.value) == (0.7, 0.7)
    assert ratio.minimum == pytest.approx(0.7 * 0.14)
    ratio.step()
    assert ratio.value == pytest.approx(0.7 - (0.7 - 0.098) / 600)
    for _ in range(700):
        ratio.step()
    assert ratio.value == pytest.approx(0.098)
    ratio.on_preemption()
    assert ratio.value == 0.7
    assert NewTokenRatio.for_conservativeness(2.0).init == 1.0  # a share, capped at all of it
    assert NewTokenRatio.for_conservativeness(0.0).value == 0.0
    with pytest.raises(ValueError, match="--schedule-conservativeness must be >= 0"):
        NewTokenRatio.for_conservativeness(-0.5)


def test_expected_tokens_count_the_prompt_left_and_a_share_of_the_outputs(
    request_factory: RequestFactory,
) -> None:
    # Prompt 6 with 4 in the cache; max_tokens 9, 2 sampled: 9 - 2 - 1 outputs still to write.
    request = request_factory("a", list(range(6)), max_tokens=9)
    request.append_output_token_ids([7, 8])
    assert expected_kv_tokens(request, num_allocated_tokens=4, ratio=0.5, max_model_len=64) == (8 - 4) + 0.5 * 6
    ignoring = request_factory("b", list(range(6)), max_tokens=9, ignore_eos=True)
    # ignore_eos: the whole length whatever the ratio: the KV it ends holding, 6 + 9 - 1.
    assert expected_kv_tokens(ignoring, num_allocated_tokens=0, ratio=0.1, max_model_len=64) == 14
    # Without max_tokens a request may run to max_model_len; the estimate is clipped.
    unbounded = request_factory("c", [1, 2], max_tokens=None)
    assert expected_kv_tokens(unbounded, num_allocated_tokens=2, ratio=1.0, max_model_len=1 << 20) == (
        CLIP_OUTPUTS_ESTIMATE)


def test_reservation_admits_anyone_when_nobody_runs_and_nothing_when_disabled_is_checked() -> None:
    reservation = KVReservation(enabled=True, reserved_tokens=10.0)
    assert not reservation.admits(7, free_tokens=16, anyone_running=True)
    assert reservation.admits(6, free_tokens=16, anyone_running=True)
    assert reservation.admits(100, free_tokens=16, anyone_running=False)
    reservation.reserve(6, allocated_now=4)
    assert reservation.reserved_tokens == 12.0
    off = KVReservation(enabled=False)
    assert off.admits(1000, free_tokens=0, anyone_running=True)


def two_requests(scheduler_factory: SchedulerFactory, request_factory: RequestFactory, *,
                 conservativeness: float = 1.0, **fields: object) -> Scheduler:
    """test_scheduler's preemption case: 4 usable blocks of 4 tokens; "a" and "b" have 4-token
    prompts and max_tokens 8, so each grows to 11 KV tokens (3 blocks)."""
    scheduler = scheduler_factory(num_blocks=5, schedule_conservativeness=conservativeness)
    scheduler.add_request(request_factory("a", [1, 2, 3, 4], max_tokens=8, **fields))
    scheduler.add_request(request_factory("b", [5, 6, 7, 8], max_tokens=8, **fields))
    return scheduler


def test_a_request_waits_instead_of_being_preempted(
    request_factory: RequestFactory,
    scheduler_factory: SchedulerFactory,
    runner_factory: RunnerFactory,
) -> None:
    # With reservation on, "b" starts only once "a" is done; nothing is recomputed.
    scheduler = two_requests(scheduler_factory, request_factory, ignore_eos=True)
    runner = runner_factory(4)
    first, first_outputs = runner.step(scheduler)
    assert first.num_scheduled_tokens == {"a": 4}, "b's 11 tokens do not fit beside a's 11"
    outputs = runner.run_to_completion(scheduler)
    assert scheduler.num_preemptions_total == 0
    assert [o.request_id for o in first_outputs] == ["a"]
    assert [len([t for o in outputs[r] for t in o.new_token_ids]) for r in ("a", "b")] == [7, 8]
    pool = scheduler.kv_cache_manager.block_pool
    assert pool.num_free_blocks == pool.num_blocks - 1


def test_requests_that_may_stop_early_share_the_cache_by_the_ratio(
    request_factory: RequestFactory,
    scheduler_factory: SchedulerFactory,
    runner_factory: RunnerFactory,
) -> None:
    # Without ignore_eos each expects 4 + 0.7 x 7 = 8.9 tokens, 3 blocks: 6 > 4 free, so "b" waits.
    scheduler = two_requests(scheduler_factory, request_factory)
    first, _ = runner_factory(4).step(scheduler)
    assert first.num_scheduled_tokens == {"a": 4}
    # With a lower conservativeness both start at once (4 + 0.35 x 7 = 6.45 tokens, 2 blocks each).
    relaxed = two_requests(scheduler_factory, request_factory, conservativeness=0.5)
    first, _ = runner_factory(4).step(relaxed)
    assert first.num_scheduled_tokens == {"a": 4, "b": 4}


def test_schedule_conservativeness_flag_is_checked() -> None:
    assert EngineArgs().schedule_conservativeness == 1.0
    with pytest.raises(ValueError, match="--schedule-conservativeness must be >= 0"):
        EngineArgs(schedule_conservativeness=-1.0)
