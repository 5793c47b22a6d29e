"""The model runner: one engine step on one device.

    SchedulerOutput ──update states──> InputBuffers.fill ──> model.forward ──> compute_logits
        (a diff)                         (host -> device once)        │              │
                                                                     prompt logprobs  sampler
                                                                                      │
    LaunchedStep.result() -> RunnerOutput <── tokens to the host (the one synchronisation) ┘

`launch` returns once the step is queued; `execute` also waits for its result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tenon.engine.scheduler_output import RunnerOutput, SchedulerOutput
from tenon.sampling.logprobs import compute_prompt_logprobs
from tenon.sampling.metadata import SamplingRow, build_sampling_metadata
from tenon.sampling.sampler import Sampler
from tenon.spec.attention import AttentionBackend, AttentionMetadata, ForwardContext
from tenon.worker.decode_graphs import DecodeGraphs
from tenon.worker.input_buffers import InputBuffers, StepInputs
from tenon.worker.launched_step import LaunchedStep, PendingTokens
from tenon.worker.request_state import RequestState


class ModelRunner:
    def __init__(
        self,
        *,
        model: Any,  # a ModelArchitecture that is also a torch.nn.Module
        attention_backend: AttentionBackend,
        kv_layers: list[torch.Tensor],
        vocab_size: int,
        buffers: InputBuffers,
        device: torch.device,
        seed: int,
        eos_token_id: int | None = None,
    ) -> None:
        self.model = model
        self.attention_backend = attention_backend
        self.kv_layers = kv_layers
        self.vocab_size = vocab_size
        self.buffers = buffers
        self.device = device
        self.sampler = Sampler()
        self.shared_generator = torch.Generator(device=device)
        self.shared_generator.manual_seed(seed)
        self.eos_token_id = eos_token_id
        self.states: dict[str, RequestState] = {}
        self.graphs: DecodeGraphs | None = None
        # The last step's attention metadata, for the KV connector's save_layer calls.
        self.last_attention_metadata: AttentionMetadata | None = None
        # Launched steps whose tokens are not on the host yet, oldest first (at most two).
        self._in_flight: list[LaunchedStep] = []

    def capture_graphs(self, platform: Any, sizes: Sequence[int], *, prune_slower: bool = False) -> float:
        """Capture the decode forward for each batch size (with `prune_slower`, keep only those
        no larger size replays at least 3% faster); returns the seconds it took."""
        self.graphs = DecodeGraphs(
            platform=platform, model=self.model, attention_backend=self.attention_backend,
            kv_layers=self.kv_layers, buffers=self.buffers, sizes=sizes,
        )
        self.graphs.capture(prune_slower=prune_slower)
        return self.graphs.capture_s

    def execute(self, scheduler_output: SchedulerOutput) -> RunnerOutput:
        """Run one step and wait for its tokens."""
        return self.launch(scheduler_output).result()

    def launch(self, scheduler_output: SchedulerOutput) -> LaunchedStep:
        """Queue one step on the device and return before its tokens reach the host.

        A request whose previous token is still in flight (asynchronous scheduling) takes it
        from the device. Rows with penalties need every earlier token on the host, so the step
        in flight is waited for first when one of them runs."""
        self._update_states(scheduler_output)
        if scheduler_output.total_num_scheduled_tokens == 0:
            return LaunchedStep.done(RunnerOutput(request_ids=[], sampled_token_ids=[]))
        request_ids = [new.request_id for new in scheduler_output.scheduled_new_requests] + [
            cached.request_id for cached in scheduler_output.scheduled_cached_requests
        ]
        states = [self.states[request_id] for request_id in request_ids]
        counts = [scheduler_output.num_scheduled_tokens[request_id] for request_id in request_ids]
        pending = self._pending_tokens(states)
        graph_size = self._graph_size(counts)
        inputs = self.buffers.fill(states, counts, pad_to_reqs=graph_size, pending=pending)
        self.last_attention_metadata = inputs.metadata

        rows = [self.states[request_id] for request_id in inputs.sampling_request_ids]
        pending_rows = pending.rows if pending is not None else {}
        # Built before the forward is queued, so its host-to-device copies never wait for it.
        sampling_metadata = build_sampling_metadata(
            [SamplingRow(s.sampling_params, s.prompt_token_ids, s.output_token_ids, self.eos_token_id,
                         num_pending_output_tokens=int(s.request_id in pending_rows))
             for s in rows],
            vocab_size=self.vocab_size,
            device=self.device,
            shared_generator=self.shared_generator,
        ) if rows else None

        self.attention_backend.prepare(inputs.metadata)
        if graph_size is not None:
            assert self.graphs is not None
            # hidden: [graph_size, hidden_size]; rows past the real requests are padding
            hidden = self.graphs.replay(inputs, graph_size)
        else:
            context = ForwardContext(
                attention_metadata=inputs.metadata,
                attention_backend=self.attention_backend,
                kv_layers=self.kv_layers,
            )
            # hidden: [num_tokens, hidden_size]
            hidden = self.model.forward(inputs.input_ids, inputs.positions, context)
        prompt_logprobs = self._prompt_logprobs(states, inputs, hidden)

        sampler_output = None
        sampled_host = None
        copied = None
        if sampling_metadata is not None:
            # logits: float32 [num_sampling_reqs, vocab_size]
            logits = self.model.compute_logits(hidden[inputs.logits_indices])
            sampler_output = self.sampler(logits, sampling_metadata)
            sampled_host, copied = self._copy_to_host(sampler_output.sampled_token_ids)
        for state, count in zip(states, counts, strict=True):
            state.num_computed_tokens += count
        step = LaunchedStep(
            request_ids=request_ids, sampling_states=rows, sampler_output=sampler_output,
            sampled_host=sampled_host, copied=copied, prompt_logprobs=prompt_logprobs,
            on_resolved=self._forget,
        )
        if sampler_output is not None:
            self._in_flight.append(step)
        return step

    def _pending_tokens(self, states: list[RequestState]) -> PendingTokens | None:
        """The last launched step's tokens, if still on the device and none of this step's
        rows needs them on the host. Older launched steps are resolved first: only one step's
        tokens are ever taken from the device."""
        while len(self._in_flight) > 1:
            self._in_flight[0].result()
        if not self._in_flight:
            return None
        if any(_needs_token_history(state.sampling_params) for state in states):
            self._in_flight[0].result()
            return None
        return self._in_flight[0].pending_tokens()

    def _forget(self, step: LaunchedStep) -> None:
        if step in self._in_flight:
            self._in_flight.remove(step)

    def _copy_to_host(self, sampled: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """A non-blocking copy of the sampled tokens into pinned memory and an event after it;
        on the CPU the tensor itself and no event."""
        if self.device.type == "cpu":
            return sampled, None
        host = torch.empty(sampled.shape, dtype=sampled.dtype, pin_memory=True)
        host.copy_(sampled, non_blocking=True)
        copied = torch.Event(device=self.device)
        copied.record()
        return host, copied

    def _graph_size(self, counts: Sequence[int]) -> int | None:
        """The captured batch size this step replays, or None to run eagerly."""
        if self.graphs is None or any(count != 1 for count in counts):
            return None
        return self.graphs.padded_size(len(counts))

    def _update_states(self, scheduler_output: SchedulerOutput) -> None:
        for request_id in scheduler_output.finished_request_ids | scheduler_output.preempted_request_ids:
            self.states.pop(request_id, None)
        for new in scheduler_output.scheduled_new_requests:
            self.states[new.request_id] = RequestState(
                request_id=new.request_id,
                prompt_token_ids=list(new.prompt_token_ids),
                output_token_ids=list(new.output_token_ids),
                sampling_params=new.sampling_params,
                block_ids=list(new.block_ids),
                num_computed_tokens=new.num_computed_tokens,
            )
        for cached in scheduler_output.scheduled_cached_requests:
            state = self.states[cached.request_id]
            state.block_ids.extend(cached.new_block_ids)
            state.num_computed_tokens = cached.num_computed_tokens

    def _prompt_logprobs(
        self, states: list[RequestState], inputs: StepInputs, hidden: torch.Tensor
    ) -> dict[str, Any]:
        """Prompt logprobs of the prompt positions in this step's chunks, returned once the
        whole prompt has been seen: a list with None for the first prompt token, then one
        (token ids, logprobs, rank) entry per later prompt token."""
        finished: dict[str, Any] = {}
        for state in states:
            wanted = state.sampling_params.prompt_logprobs
            if wanted is None:
                continue
            first_row, count, first_position = inputs.query_ranges[state.request_id]
            prompt_len = len(state.prompt_token_ids)
            # rows whose next token is still a prompt token
            num_rows = max(0, min(count, prompt_len - 1 - first_position))
            if num_rows:
                logits = self.model.compute_logits(hidden[first_row : first_row + num_rows])
                targets = torch.tensor(
                    state.prompt_token_ids[first_position + 1 : first_position + 1 + num_rows],
                    device=logits.device,
                )
                token_lp, ranks, top_ids, top_lp = compute_prompt_logprobs(logits, targets, wanted)
                for row in range(num_rows):
                    state.prompt_logprobs_parts.append(
                        (
                            [int(targets[row])] + top_ids[row].tolist(),
                            [float(token_lp[row])] + top_lp[row].tolist(),
                            int(ranks[row]),
                        )
                    )
            if first_position < prompt_len <= first_position + count:  # the prompt's last chunk
                finished[state.request_id] = [None, *state.prompt_logprobs_parts]
                state.prompt_logprobs_parts = []
        return finished


def _needs_token_history(params: Any) -> bool:
    """Whether sampling a row reads its earlier tokens' ids (the penalties)."""
    return (
        params.presence_penalty != 0.0
        or params.frequency_penalty != 0.0
        or params.repetition_penalty != 1.0
    )
