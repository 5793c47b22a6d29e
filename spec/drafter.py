"""Speculative drafters: propose draft tokens; the core verifies them.

The scheduler budgets `num_speculative_tokens` extra tokens per running request; the model
runner scores drafts with the target model in the same step and accepts by rejection sampling,
so a drafter can never change the output distribution, only the speed.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

import attrs


@attrs.frozen(kw_only=True)
class DraftRequest:
    request_id: str
    token_ids: Sequence[int]  # prompt + accepted output so far


class Drafter(abc.ABC):
    """Built once per worker from `--speculative-config` (a JSON object; `method` selects).

    `propose` is called by the model runner once per step after sampling, for the running
    requests; it returns at most `num_speculative_tokens` token ids per request (fewer or none
    when it has no good guess). It must not change any engine state.
    """

    def __init__(self, config: Mapping[str, Any], num_speculative_tokens: int) -> None:
        self.config = config
        self.num_speculative_tokens = num_speculative_tokens

    @abc.abstractmethod
    def propose(self, requests: Sequence[DraftRequest]) -> list[list[int]]:
        """Draft tokens per request, in the order given."""
