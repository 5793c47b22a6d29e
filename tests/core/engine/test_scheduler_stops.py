"""Stop conditions, aborts and request validation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tenon.engine.request import Request, RequestStatus
from tenon.engine.scheduler import Scheduler
from tenon.engine.scheduler_output import RunnerOutput

RequestFactory = Callable[..., Request]
SchedulerFactory = Callable[..., Scheduler]
# Builds conftest's FakeRunner, which test modules cannot import by name.
RunnerFactory = Callable[..., Any]

EOS = 7


def eos_from_position_6(request_id: str, position: int) -> int:
    return EOS if position >= 6 else 100 + position


def run_one(
    request_factory: RequestFactory,
    scheduler_factory: SchedulerFactory,
    runner_factory: RunnerFactory,
    prompt_token_ids: list[int],
    scheduler_options: dict[str, int] | None = None,
    **request_options: object,
) -> tuple[list[int], str | None, int | str | None]:
    scheduler = scheduler_factory(**(scheduler_options or {}))
    runner = runner_factory(4, eos_from_position_6)
    scheduler.add_request(request_factory("r", prompt_token_ids, **request_options))
    outputs = runner.run_to_completion(scheduler)["r"]
    assert [o.is_finished for o in outputs] == [False] * (len(outputs) - 1) + [True]
    assert scheduler.kv_cache_manager.usage == 0.0
    tokens = [t for o in outputs for t in o.new_token_ids]
    return tokens, outputs[-1].finish_reason, outputs[-1].stop_reason


@pytest.mark.parametrize(
    ("request_options", "expected"),
    [
        ({"max_tokens": 2, "eos_token_id": EOS}, ([104, 105], "length", None)),
        ({"max_tokens": 9, "eos_token_id": EOS}, ([104, 105, EOS], "stop", None)),
        # EOS as the last allowed token is a stop, not a length cut.
        ({"max_tokens": 3, "eos_token_id": EOS}, ([104, 105, EOS], "stop", None)),
        (
            {"max_tokens": 9, "eos_token_id": EOS, "min_tokens": 5},
            ([104, 105, EOS, EOS, EOS], "stop", None),
        ),
        (
            {"max_tokens": 5, "eos_token_id": EOS, "ignore_eos": True},
            ([104, 105, EOS, EOS, EOS], "length", None),
        ),
        ({"max_tokens": 9, "stop_token_ids": (105,)}, ([104, 105], "stop", 105)),
        (
            {"max_tokens": 9, "stop_token_ids": (105, EOS), "min_tokens": 3},
            ([104, 105, EOS], "stop", EOS),
        ),
        # ignore_eos leaves stop_token_ids alone, even when they name the EOS token.
        (
            {"max_tokens": 9, "eos_token_id": EOS, "ignore_eos": True, "stop_token_ids": (EOS,)},
            ([104, 105, EOS], "stop", EOS),
        ),
        # max_model_len 10 ends it at 6 output tokens.
        ({"max_tokens": None}, ([104, 105, EOS, EOS, EOS, EOS], "length", None)),
    ],
)
def test_stop_conditions(
    request_factory: RequestFactory,
    scheduler_factory: SchedulerFactory,
    runner_factory: RunnerFactory,
    request_options: dict[str, object],
    expected: tuple[list[int], str, int | None],
) -> None:
    result = run_one(
        request_factory,
        scheduler_factory,
        runner_factory,
        [1, 2, 3, 4],
        {"max_model_len": 10},
        **request_options,
    )
    assert result == expected


def test_prompt_of_max_model_len_yields_one_token(
    request_factory: RequestFactory,
    scheduler_factory: SchedulerFactory,
    runner_factory: RunnerFactory,
) -> None:
    result = run_one(
        request_factory,
        scheduler_factory,
        runner_factory,
        list(range(8)),
        {"max_model_len": 8},
        max_tokens=None,
    )
    assert result == ([EOS], "length", None)


def test_abort_frees_blocks_of_running_and_waiting_requests(
    request_factory: RequestFactory,
    scheduler_factory: SchedulerFactory,
    runner_factory: RunnerFactory,
) -> None:
    scheduler = scheduler_factory(max_num_seqs=1)
    runner = runner_factory(4)
    scheduler.add_request(request_factory("a", list(range(9))))
    scheduler.add_request(request_factory("b", list(range(5))))
    runner.step(scheduler)
    assert scheduler.kv_cache_manager.get_block_ids("a") == [1, 2, 3]
    scheduler.abort_requests(["a", "b", "unknown"])
    assert scheduler.kv_cache_manager.usage == 0.0
    assert (scheduler.num_running, scheduler.num_waiting) == (0, 0)
    assert not scheduler.has_unfinished_requests()
    output = scheduler.schedule()
    assert output.finished_request_ids == {"a", "b"}
    assert output.num_scheduled_tokens == {}


def test_abort_between_schedule_and_update(
    request_factory: RequestFactory,
    scheduler_factory: SchedulerFactory,
    runner_factory: RunnerFactory,
) -> None:
    scheduler = scheduler_factory()
    runner = runner_factory(4)
    aborted = request_factory("a", list(range(5)))
    scheduler.add_request(aborted)
    scheduler.add_request(request_factory("b", list(range(20, 25))))
    scheduler_output = scheduler.schedule()
    runner_output = runner.execute(scheduler_output)
    scheduler.abort_requests(["a"])
    outputs = scheduler.update_from_output(scheduler_output, runner_output)
    assert [(o.request_id, o.new_token_ids) for o in outputs] == [("b", [1050])]
    assert aborted.status is RequestStatus.FINISHED_ABORTED
    assert aborted.output_token_ids == []
    assert scheduler.kv_cache_manager.get_block_ids("a") == []
    assert scheduler.kv_cache_manager.get_block_ids("b") == [3, 4]


def test_logprobs_pass_through_untouched(
    request_factory: RequestFactory, scheduler_factory: SchedulerFactory
) -> None:
    scheduler = scheduler_factory(max_num_batched_tokens=4)
    scheduler.add_request(request_factory("a", list(range(6)), prompt_logprobs=1, logprobs=1))
    scheduler_output = scheduler.schedule()
    prompt_chunk = object()
    outputs = scheduler.update_from_output(
        scheduler_output,
        RunnerOutput(["a"], [[]], logprobs=[None], prompt_logprobs=[prompt_chunk]),
    )
    # A prefill chunk that samples nothing still forwards its prompt logprobs.
    assert [(o.new_token_ids, o.prompt_logprobs, o.logprobs) for o in outputs] == [
        ([], prompt_chunk, None)
    ]
    scheduler_output = scheduler.schedule()
    sample_logprobs = object()
    outputs = scheduler.update_from_output(
        scheduler_output,
        RunnerOutput(["a"], [[42]], logprobs=[sample_logprobs], prompt_logprobs=[None]),
    )
    assert [(o.new_token_ids, o.logprobs) for o in outputs] == [([42], sample_logprobs)]


def test_add_request_rejects_a_prompt_longer_than_max_model_len(
    request_factory: RequestFactory, scheduler_factory: SchedulerFactory
) -> None:
    scheduler = scheduler_factory(max_model_len=32)
    with pytest.raises(ValueError) as error:
        scheduler.add_request(request_factory("a", list(range(33))))
    assert str(error.value) == (
        "prompt has 33 tokens but --max-model-len is 32; shorten the prompt or raise "
        "--max-model-len"
    )
    assert not scheduler.has_unfinished_requests()


def test_add_request_rejects_what_the_kv_cache_could_never_hold(
    request_factory: RequestFactory, scheduler_factory: SchedulerFactory
) -> None:
    scheduler = scheduler_factory(num_blocks=3)  # 2 usable blocks: 8 tokens
    with pytest.raises(ValueError, match=r"KV cache for 9 tokens .* holds 8 tokens"):
        scheduler.add_request(request_factory("a", list(range(6)), max_tokens=4))
    # The last sampled token never needs KV, so 6 + 3 tokens fit in 8 slots.
    scheduler.add_request(request_factory("b", list(range(6)), max_tokens=3))
    with pytest.raises(ValueError, match="already in use"):
        scheduler.add_request(request_factory("b", [1]))
    with pytest.raises(ValueError, match="empty"):
        scheduler.add_request(request_factory("c", []))


def test_scheduler_options_are_validated(scheduler_factory: SchedulerFactory) -> None:
    with pytest.raises(ValueError, match="--max-num-seqs must be >= 1"):
        scheduler_factory(max_num_seqs=0)
    with pytest.raises(ValueError, match="chunked prefill disabled"):
        scheduler_factory(max_num_batched_tokens=16, enable_chunked_prefill=False)
    with pytest.raises(ValueError, match="needs chunked prefill"):
        scheduler_factory(
            max_model_len=16, long_prefill_token_threshold=4, enable_chunked_prefill=False
        )
