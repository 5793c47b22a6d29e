"""What the worker remembers about each request between steps.

The scheduler's output is a diff: a request arrives in full once (`NewRequestData`), then only
as the blocks it gained and how far it has been computed. The worker keeps the rest here and
appends the tokens it samples itself, so nothing is sent twice.
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.define(kw_only=True)
class RequestState:
    request_id: str
    prompt_token_ids: list[int]
    output_token_ids: list[int]
    sampling_params: Any  # tenon.sampling.params.SamplingParams
    block_ids: list[int]
    num_computed_tokens: int
    # prompt_logprobs are gathered chunk by chunk and returned once the prompt is done
    prompt_logprobs_parts: list[Any] = attrs.field(factory=list)

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_token_ids) + len(self.output_token_ids)

    def token_ids(self, start: int, stop: int) -> list[int]:
        """Token ids at sequence positions [start, stop)."""
        prompt_len = len(self.prompt_token_ids)
        if stop <= prompt_len:
            return self.prompt_token_ids[start:stop]
        if start >= prompt_len:
            return self.output_token_ids[start - prompt_len : stop - prompt_len]
        return self.prompt_token_ids[start:] + self.output_token_ids[: stop - prompt_len]
