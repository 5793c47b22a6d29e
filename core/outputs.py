"""What the offline API returns, with vLLM's shape: `RequestOutput.outputs[i].text`, ..."""

from __future__ import annotations

import attrs


@attrs.frozen
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


# One position: token id -> Logprob (the chosen token and the top alternatives).
PositionLogprobs = dict[int, Logprob]


@attrs.define(kw_only=True)
class CompletionOutput:
    index: int
    text: str = ""
    token_ids: list[int] = attrs.field(factory=list)
    cumulative_logprob: float | None = None
    logprobs: list[PositionLogprobs] | None = None
    finish_reason: str | None = None  # "stop", "length", "abort"
    stop_reason: int | str | None = None  # the stop string or token id that ended it

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


@attrs.define(kw_only=True)
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]
    finished: bool = False
    num_cached_tokens: int = 0
    prompt_logprobs: list[PositionLogprobs | None] | None = None
