"""Records that cross the engine-core boundary each step.

scheduler -> workers: `SchedulerOutput`, a diff against what the workers already hold. A
request is sent in full once (`NewRequestData`), then only as the blocks it gained
(`CachedRequestData`). Workers drop the state of finished and preempted requests; a preempted
request comes back later as a `NewRequestData` carrying the output it must recompute.

workers -> scheduler: `RunnerOutput`. scheduler -> frontend: `EngineCoreOutput`s.
"""

from __future__ import annotations

from typing import Any

import attrs

from tenon.engine.kv_connector_output import KVConnectorOutput
from tenon.engine.request import SamplingParamsLike


@attrs.frozen
class NewRequestData:
    request_id: str
    prompt_token_ids: list[int]
    sampling_params: SamplingParamsLike
    # The request's whole block table.
    block_ids: list[int]
    # Tokens already in the KV cache (a prefix-cache hit); this step's tokens follow them.
    num_computed_tokens: int
    # Non-empty only for a request resumed after preemption: its output so far, which is fed
    # to the model again after the prompt.
    output_token_ids: list[int]


@attrs.frozen
class CachedRequestData:
    request_id: str
    # Blocks appended to the request's block table this step (often none during decode).
    new_block_ids: list[int]
    # Tokens already in the KV cache before this step; this step's tokens follow them.
    num_computed_tokens: int


@attrs.frozen
class SchedulerOutput:
    scheduled_new_requests: list[NewRequestData]
    scheduled_cached_requests: list[CachedRequestData]
    # How many tokens each scheduled request advances this step.
    num_scheduled_tokens: dict[str, int]
    total_num_scheduled_tokens: int
    # Requests finished or aborted since the previous step.
    finished_request_ids: set[str]
    # Requests preempted this step (their KV blocks were freed).
    preempted_request_ids: set[str]
    # The KV connector's description of this step's loads and saves (None without one).
    kv_connector_metadata: Any = None

    @property
    def num_scheduled_requests(self) -> int:
        return len(self.num_scheduled_tokens)


@attrs.frozen
class RunnerOutput:
    """What the model runner produced for the requests it ran, in `request_ids` order."""

    request_ids: list[str]
    # One list per request; empty for a request whose scheduled tokens stopped short of the
    # end of its known tokens (a prefill chunk that is not the last).
    sampled_token_ids: list[list[int]]
    # Per-request objects passed through to the frontend untouched; None when not requested.
    logprobs: list[object | None] | None = None
    prompt_logprobs: list[object | None] | None = None
    kv_connector_output: KVConnectorOutput | None = None


@attrs.frozen
class EngineCoreOutput:
    request_id: str
    new_token_ids: list[int]
    # "stop" | "length" | "abort", or None while the request runs on.
    finish_reason: str | None = None
    # The stop token id that ended the request (None for EOS and length).
    stop_reason: int | str | None = None
    # Prefix-cache hit at the request's first schedule, in tokens.
    num_cached_tokens: int = 0
    logprobs: object | None = None
    prompt_logprobs: object | None = None

    @property
    def is_finished(self) -> bool:
        return self.finish_reason is not None
