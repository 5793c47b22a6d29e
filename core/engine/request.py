"""One generation request as the engine core sees it: token ids, progress and status."""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Sequence
from typing import Protocol


class SamplingParamsLike(Protocol):
    """The fields of `tenon.sampling.params.SamplingParams` the scheduler reads."""

    @property
    def max_tokens(self) -> int | None: ...

    @property
    def min_tokens(self) -> int: ...

    @property
    def ignore_eos(self) -> bool: ...

    @property
    def stop_token_ids(self) -> Sequence[int]: ...

    @property
    def prompt_logprobs(self) -> int | None: ...


class RequestStatus(enum.Enum):
    WAITING = enum.auto()
    RUNNING = enum.auto()
    PREEMPTED = enum.auto()
    FINISHED_STOPPED = enum.auto()
    FINISHED_LENGTH = enum.auto()
    FINISHED_ABORTED = enum.auto()

    @property
    def is_finished(self) -> bool:
        return self in _FINISH_REASONS

    @property
    def finish_reason(self) -> str | None:
        """The OpenAI `finish_reason` for a finished status, None while unfinished."""
        return _FINISH_REASONS.get(self)


_FINISH_REASONS: dict[RequestStatus, str] = {
    RequestStatus.FINISHED_STOPPED: "stop",
    RequestStatus.FINISHED_LENGTH: "length",
    RequestStatus.FINISHED_ABORTED: "abort",
}


class Request:
    """Mutable per-request state owned by the scheduler.

    `num_computed_tokens` counts tokens whose KV is in the cache; the tokens in
    `all_token_ids` past it are still to be fed to the model (the rest of a prompt, or the
    last sampled token). `block_hashes` holds one hash per *full* block of `all_token_ids`,
    extended by the KV cache manager as blocks fill.

    With asynchronous scheduling a step is scheduled before the previous step's tokens reach
    the host: `num_output_placeholders` counts tokens sampled on the device but not yet
    appended, and `num_computed_tokens` already includes the tokens of steps in flight.
    """

    def __init__(
        self,
        request_id: str,
        prompt_token_ids: Sequence[int],
        sampling_params: SamplingParamsLike,
        eos_token_id: int | None = None,
        arrival_time_s: float | None = None,
    ) -> None:
        self.request_id = request_id
        self.prompt_token_ids: list[int] = list(prompt_token_ids)
        self.sampling_params = sampling_params
        self.eos_token_id = eos_token_id
        self.arrival_time_s = time.time() if arrival_time_s is None else arrival_time_s
        self.output_token_ids: list[int] = []
        self.all_token_ids: list[int] = list(prompt_token_ids)
        self.num_computed_tokens = 0
        # Prefix-cache hit at the first schedule, in tokens; None until then.
        self.num_cached_tokens: int | None = None
        self.num_preemptions = 0
        self.status = RequestStatus.WAITING
        # The stop token id that ended the request (None for EOS, length and abort).
        self.stop_reason: int | str | None = None
        self.block_hashes: list[bytes] = []
        self.num_output_placeholders = 0

    @property
    def num_tokens(self) -> int:
        return len(self.all_token_ids)

    @property
    def num_tokens_with_placeholders(self) -> int:
        """Tokens known on the host plus those sampled on the device and still on their way."""
        return len(self.all_token_ids) + self.num_output_placeholders

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.output_token_ids)

    @property
    def is_finished(self) -> bool:
        return self.status.is_finished

    @property
    def finish_reason(self) -> str | None:
        return self.status.finish_reason

    @property
    def skip_reading_prefix_cache(self) -> bool:
        # Prompt logprobs need the logits of every prompt position, so no position may be
        # skipped by a prefix-cache hit.
        return self.sampling_params.prompt_logprobs is not None

    def append_output_token_ids(self, token_ids: int | Iterable[int]) -> None:
        if isinstance(token_ids, int):
            token_ids = (token_ids,)
        for token_id in token_ids:
            self.output_token_ids.append(token_id)
            self.all_token_ids.append(token_id)

    def __repr__(self) -> str:
        return (
            f"Request({self.request_id!r}, status={self.status.name}, "
            f"num_tokens={self.num_tokens}, num_computed_tokens={self.num_computed_tokens})"
        )
