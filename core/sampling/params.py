"""Per-request sampling parameters, with vLLM's field names and defaults.

A `SamplingParams` is a frozen record of plain Python values: cheap to build, picklable, and safe to
share between the `n` sequences of one request (`clone` makes the per-sequence copies).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

# Below this temperature a request is decoded greedily (argmax), as in vLLM.
GREEDY_TEMPERATURE_EPS = 1e-5


def _normalise_top_k(top_k: int) -> int:
    # vLLM accepts both 0 and -1 for "no top-k"; inside Tenon only 0 means off.
    return 0 if top_k == -1 else top_k


def _normalise_stop(stop: str | Sequence[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    return tuple(stop)


def _normalise_token_ids(token_ids: Sequence[int] | None) -> tuple[int, ...]:
    if token_ids is None:
        return ()
    return tuple(int(token_id) for token_id in token_ids)


@attrs.frozen(kw_only=True)
class SamplingParams:
    """How to sample the tokens of one request. Field names and defaults follow vLLM.

    `top_k` 0 or -1 disables top-k (stored as 0). `max_tokens` None means "until the model's
    context is full". `best_of` is not supported: ask for `n` sequences instead.
    """

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = attrs.field(default=0, converter=_normalise_top_k)
    min_p: float = 0.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = attrs.field(default=(), converter=_normalise_stop)
    stop_token_ids: tuple[int, ...] = attrs.field(default=(), converter=_normalise_token_ids)
    ignore_eos: bool = False
    max_tokens: int | None = 16
    min_tokens: int = 0
    logprobs: int | None = None
    prompt_logprobs: int | None = None
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    include_stop_str_in_output: bool = False
    detokenize: bool = True

    def __attrs_post_init__(self) -> None:
        # One method of plain checks is cheaper than a validator object per field, and
        # construction happens once per request (and once per sequence for n > 1).
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.temperature < 0.0:
            raise ValueError(
                f"temperature must be >= 0, got {self.temperature}; use 0 for greedy decoding"
            )
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(
                f"top_p must be in (0, 1], got {self.top_p}; use 1 to disable nucleus sampling"
            )
        if self.top_k < 0:
            raise ValueError(
                f"top_k must be >= 0 (or -1), got {self.top_k}; use 0 or -1 to disable top-k"
            )
        if not 0.0 <= self.min_p <= 1.0:
            raise ValueError(f"min_p must be in [0, 1], got {self.min_p}; use 0 to disable min-p")
        if not -2.0 <= self.presence_penalty <= 2.0:
            raise ValueError(f"presence_penalty must be in [-2, 2], got {self.presence_penalty}")
        if not -2.0 <= self.frequency_penalty <= 2.0:
            raise ValueError(f"frequency_penalty must be in [-2, 2], got {self.frequency_penalty}")
        if not self.repetition_penalty > 0.0:
            raise ValueError(
                f"repetition_penalty must be > 0, got {self.repetition_penalty}; "
                "use 1 to disable it"
            )
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(
                f"max_tokens must be >= 1 or None, got {self.max_tokens}; "
                "use None to generate until the context is full"
            )
        if self.min_tokens < 0:
            raise ValueError(f"min_tokens must be >= 0, got {self.min_tokens}")
        if self.max_tokens is not None and self.min_tokens > self.max_tokens:
            raise ValueError(
                f"min_tokens must be <= max_tokens ({self.max_tokens}), got {self.min_tokens}"
            )
        if self.logprobs is not None and self.logprobs < 0:
            raise ValueError(f"logprobs must be >= 0 or None, got {self.logprobs}")
        if self.prompt_logprobs is not None and self.prompt_logprobs < 0:
            raise ValueError(f"prompt_logprobs must be >= 0 or None, got {self.prompt_logprobs}")
        for stop_string in self.stop:
            if not isinstance(stop_string, str) or not stop_string:
                raise ValueError(
                    f"stop must hold non-empty strings, got {stop_string!r} in {list(self.stop)}"
                )

    @property
    def is_greedy(self) -> bool:
        return self.temperature < GREEDY_TEMPERATURE_EPS

    def clone(self, **changes: Any) -> SamplingParams:
        """A copy with `changes` applied, validated again (used to fan `n > 1` out)."""
        return attrs.evolve(self, **changes)


def validate_logprobs(params: SamplingParams, max_logprobs: int) -> None:
    """Raise ValueError if the request asks for more logprobs than the engine allows."""
    for field_name in ("logprobs", "prompt_logprobs"):
        num_logprobs = getattr(params, field_name)
        if num_logprobs is not None and num_logprobs > max_logprobs:
            raise ValueError(
                f"{field_name} must be <= max_logprobs ({max_logprobs}), got {num_logprobs}; "
                "ask for fewer or raise the engine's --max-logprobs"
            )
