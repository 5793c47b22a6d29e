"""KV reservation at admission: admit a waiting request only while the free KV cache still holds
what the running requests are expected to need (SGLang's `--schedule-conservativeness`).

Without it (vLLM's policy) the scheduler admits whatever prompt fits now; once the running
requests' outputs fill the cache, the newest is preempted and recomputed later. When decode
steps are bound by reading the KV cache, a bigger batch barely raises throughput, so those
recomputations are mostly lost work: on the offline-1k workload (1000 prompts of 1000 tokens,
1000 out, an 880k-token cache) the engine preempted 410 times and computed 28% more tokens
than the workload holds.

A request is expected to need the rest of its prompt and a share of its remaining output
tokens (up to `max_tokens`, or up to `max_model_len`):

    expected = known tokens not yet in the cache (the prompt's rest; after a preemption also
               the outputs to recompute) + ratio x (max outputs - outputs so far - 1)

(the last output token is never fed back, so its K/V is never written: an ignore_eos request
admitted with nothing cached expects prompt + max_tokens - 1 tokens, the KV it ends holding,
which is what the offline limit model reserves for it).

`ratio` is 1 for `ignore_eos` requests (they stop only at their length). For the others it is
the new-token ratio, SGLang's estimate of the share of its budget a request still decodes: it
starts at `0.7 x conservativeness`, decays linearly to 14% of that over 600 steps, and goes back
to its start whenever the scheduler had to preempt; it is applied to at most 4096 remaining
outputs (SGLang's clip: a request without max_tokens may run to the context length, which says
little about how far it will go). A conservativeness of 0 turns reservation off (vLLM's
behaviour); preemption stays as the safety net either way.
"""

from __future__ import annotations

import attrs

from tenon.engine.request import Request

INIT_NEW_TOKEN_RATIO = 0.7
MIN_NEW_TOKEN_RATIO_FACTOR = 0.14
NEW_TOKEN_RATIO_DECAY_STEPS = 600
CLIP_OUTPUTS_ESTIMATE = 4096  # remaining outputs counted for a request that may stop early


@attrs.define
class NewTokenRatio:
    """The share of its remaining output budget a running request is expected to decode."""

    init: float
    minimum: float
    decay_per_step: float
    value: float

    @classmethod
    def for_conservativeness(cls, conservativeness: float) -> NewTokenRatio:
        if conservativeness < 0:
            raise ValueError(f"--schedule-conservativeness must be >= 0, got {conservativeness}")
        init = min(1.0, INIT_NEW_TOKEN_RATIO * conservativeness)
        minimum = min(1.0, init * MIN_NEW_TOKEN_RATIO_FACTOR)
        return cls(init=init, minimum=minimum, decay_per_step=(init - minimum) / NEW_TOKEN_RATIO_DECAY_STEPS,
                   value=init)

    def step(self) -> None:
        self.value = max(self.minimum, self.value - self.decay_per_step)

    def on_preemption(self) -> None:
        self.value = self.init


def max_output_tokens(request: Request, max_model_len: int) -> int:
    """The most output tokens `request` may still produce in all."""
    limit = max_model_len - request.num_prompt_tokens
    max_tokens = request.sampling_params.max_tokens
    return limit if max_tokens is None else min(max_tokens, limit)


def expected_kv_tokens(request: Request, *, num_allocated_tokens: int, ratio: float, max_model_len: int) -> float:
    """KV tokens `request` is expected to add beyond the `num_allocated_tokens` it holds."""
    known_left = max(0, request.num_tokens - num_allocated_tokens)
    # Tokens sampled on the device but not yet seen (asynchronous scheduling) are outputs too.
    num_outputs = request.num_output_tokens + request.num_output_placeholders
    outputs_left = max(0, max_output_tokens(request, max_model_len) - num_outputs - 1)
    if request.sampling_params.ignore_eos:
        return known_left + outputs_left
    return known_left + ratio * min(outputs_left, CLIP_OUTPUTS_ESTIMATE)


@attrs.define
class KVReservation:
    """One step's admission budget: free KV tokens less what the running requests expect."""

    enabled: bool
    reserved_tokens: float = 0.0

    def admits(self, expected_tokens: float, *, free_tokens: int, anyone_running: bool) -> bool:
        """Whether a request expected to need `expected_tokens` may start. With nobody
        running it always may (a request longer than its share would never start)."""
        if not self.enabled or not anyone_running:
            return True
        return self.reserved_tokens + expected_tokens <= free_tokens

    def reserve(self, expected_tokens: float, *, allocated_now: int) -> None:
        """Count an admitted request's expected tokens, less what it allocated this step."""
        if self.enabled:
            self.reserved_tokens += max(0.0, expected_tokens - allocated_now)
