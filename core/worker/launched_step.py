"""A step queued on the device whose sampled tokens are still on their way to the host.

The runner launches a step (inputs, forward, sampler, a non-blocking copy of the sampled tokens
into pinned memory and an event after it) and returns at once; `result()` waits for the event,
appends the tokens to the worker's request states and builds the `RunnerOutput`. Asynchronous
scheduling launches step N+1 before calling step N's `result()`, so host work overlaps the device:

    host:   schedule N+1 | launch N+1 | N.result() (waits) | update N | schedule N+2 | ...
    device: ......... step N ......... | ......... step N+1 ......... | ...

Until N's tokens land, step N+1 reads them from the device (`PendingTokens`): the runner copies
them into its input ids on the device, so no step waits for the host to see a token.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import torch

from tenon.engine.scheduler_output import RunnerOutput
from tenon.worker.request_state import RequestState


@attrs.frozen(kw_only=True)
class PendingTokens:
    """Tokens a launched step sampled, still only on the device."""

    sampled_token_ids: torch.Tensor  # int64 [num_sampling_reqs], on the device
    rows: dict[str, int]  # request id -> its row in sampled_token_ids


class LaunchedStep:
    def __init__(
        self,
        *,
        request_ids: list[str],
        sampling_states: list[RequestState],
        sampler_output: Any | None,  # tenon.sampling.sampler.SamplerOutput
        sampled_host: torch.Tensor | None,  # int64 [num_sampling_reqs], filled by a device copy
        copied: Any | None,  # an event recorded after that copy; None when already on the host
        prompt_logprobs: dict[str, Any],
        on_resolved: Callable[[LaunchedStep], None] | None = None,
    ) -> None:
        self.request_ids = request_ids
        self.sampling_states = sampling_states
        self.sampler_output = sampler_output
        self.sampled_host = sampled_host
        self.copied = copied
        self.prompt_logprobs = prompt_logprobs
        self.on_resolved = on_resolved
        self._result: RunnerOutput | None = None

    @classmethod
    def done(cls, output: RunnerOutput) -> LaunchedStep:
        """A step with nothing left on the device (empty, or run synchronously)."""
        step = cls(request_ids=output.request_ids, sampling_states=[], sampler_output=None,
                   sampled_host=None, copied=None, prompt_logprobs={})
        step._result = output
        return step

    @property
    def resolved(self) -> bool:
        return self._result is not None

    def pending_tokens(self) -> PendingTokens | None:
        """The sampled tokens on the device while they are not on the host; None after."""
        if self._result is not None or self.sampler_output is None:
            return None
        return PendingTokens(
            sampled_token_ids=self.sampler_output.sampled_token_ids,
            rows={state.request_id: row for row, state in enumerate(self.sampling_states)},
        )

    def result(self) -> RunnerOutput:
        """Wait for the sampled tokens, append them to the request states (once) and return
        the step's output."""
        if self._result is not None:
            return self._result
        sampled: dict[str, list[int]] = {}
        logprobs: dict[str, Any] = {}
        output = self.sampler_output
        if output is not None:
            assert self.sampled_host is not None
            if self.copied is not None:
                self.copied.synchronize()  # the step's one synchronisation
            token_ids = self.sampled_host.tolist()
            for index, (state, token_id) in enumerate(zip(self.sampling_states, token_ids, strict=True)):
                state.output_token_ids.append(token_id)
                sampled[state.request_id] = [token_id]
                wanted = state.sampling_params.logprobs
                if wanted is not None and output.logprobs is not None:
                    assert output.logprob_token_ids is not None and output.sampled_token_ranks is not None
                    logprobs[state.request_id] = [
                        (
                            output.logprob_token_ids[index, : wanted + 1].tolist(),
                            output.logprobs[index, : wanted + 1].tolist(),
                            int(output.sampled_token_ranks[index]),
                        )
                    ]
        request_ids = self.request_ids
        prompt_logprobs = self.prompt_logprobs
        self._result = RunnerOutput(
            request_ids=request_ids,
            sampled_token_ids=[sampled.get(request_id, []) for request_id in request_ids],
            logprobs=[logprobs.get(request_id) for request_id in request_ids] if logprobs else None,
            prompt_logprobs=(
                [prompt_logprobs.get(request_id) for request_id in request_ids]
                if prompt_logprobs
                else None
            ),
        )
        # Drop device tensors now: a step resolved late must not hold memory or the sampler's
        # outputs past its time.
        self.sampler_output = None
        if self.on_resolved is not None:
            self.on_resolved(self)
        return self._result
