"""Asynchronous scheduling's corner: a request preempted while its last token is in flight."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tenon.engine.request import Request, RequestStatus
from tenon.engine.scheduler import Scheduler


def test_request_preempted_while_its_last_token_is_in_flight_finishes_from_waiting(
    request_factory: Callable[..., Request],
    scheduler_factory: Callable[..., Scheduler],
    runner_factory: Callable[..., Any],
) -> None:
    # Two usable blocks of 4 tokens: A and B prefill one block each. Step 2 is scheduled before
    # step 1's tokens land: A needs a second block, so B (admitted last) is preempted while its
    # one and only token (max_tokens=1) is still in flight.
    scheduler = scheduler_factory(num_blocks=3, block_size=4, max_model_len=32, async_scheduling=True,
                                  schedule_conservativeness=0.0)  # both start: vLLM's policy
    runner = runner_factory(4)
    scheduler.add_request(request_factory("a", [1, 2, 3, 4], max_tokens=4))
    scheduler.add_request(request_factory("b", [5, 6, 7, 8], max_tokens=1))
    first = scheduler.schedule()
    first_tokens = runner.execute(first)
    b = scheduler.requests["b"]
    assert b.num_output_placeholders == 1

    second = scheduler.schedule()
    assert second.preempted_request_ids == {"b"}
    assert b.status is RequestStatus.PREEMPTED and list(scheduler.waiting) == [b]
    assert b.num_output_placeholders == 1  # still in flight: its token is computed and valid
    runner.execute(second)

    outputs = {output.request_id: output for output in scheduler.update_from_output(first, first_tokens)}
    assert outputs["b"].finish_reason == "length" and len(outputs["b"].new_token_ids) == 1
    assert "b" not in scheduler.requests and list(scheduler.waiting) == []  # not readmitted
    assert scheduler.kv_cache_manager.get_block_ids("b") == []
    assert [request.request_id for request in scheduler.running] == ["a"]
