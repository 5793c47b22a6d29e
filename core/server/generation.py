"""One HTTP request's engine requests (each prompt times `n`), run and merged into one stream.

The text side is the offline API's: `RequestTracker` detokenizes incrementally, applies stop
strings and gathers logprobs per child, so the server and `LLM.generate` give the same text and
numbers. What this adds is the asynchronous part:

    engine.generate(child 0) --pump task--\\
    engine.generate(child 1) --pump task---+--> queue --> stream(): ChoiceDelta per output
    ...                                   /

A stop string matched here finishes the child and aborts it in the engine. Leaving `stream()`
early (client disconnect, cancellation, an error) cancels every pump, which closes the engine
iterators, and aborts the children still running; nothing in that path awaits, because a
cancelled handler may not get to await again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence

import attrs

from tenon.engine.scheduler_output import EngineCoreOutput
from tenon.frontend.input_processor import ProcessedPrompt, child_requests
from tenon.frontend.output_processor import RequestTracker
from tenon.outputs import CompletionOutput, PositionLogprobs, RequestOutput
from tenon.sampling.params import SamplingParams
from tenon.server.engine_interface import EngineDeadError
from tenon.server.serving_common import ServerState


@attrs.frozen(kw_only=True)
class ChoiceDelta:
    """What one engine output added to one choice."""

    index: int  # the choice index: prompt_index * n + sample index
    request_output: RequestOutput  # the choice's prompt side (prompt ids, prompt logprobs)
    text: str
    token_ids: list[int]
    logprobs: list[PositionLogprobs] | None
    finish_reason: str | None
    stop_reason: int | str | None
    is_first: bool


@attrs.define(kw_only=True)
class _Child:
    request_id: str
    choice_index: int
    prompt_token_ids: list[int]
    params: SamplingParams
    tracker: RequestTracker
    has_emitted: bool = False
    last_output_s: float | None = None

    @property
    def completion(self) -> CompletionOutput:
        return self.tracker.children[self.request_id].output


class GenerationRun:
    """Builds and validates the engine requests at construction (ValueError for a bad one)."""

    def __init__(self, state: ServerState, request_id: str, prompts: Sequence[ProcessedPrompt],
                 params: SamplingParams, *, arrival_s: float) -> None:
        self._state = state
        self._arrival_s = arrival_s
        info = state.model_info
        self.trackers: list[RequestTracker] = []
        self._children: list[_Child] = []
        for prompt_index, prompt in enumerate(prompts):
            prompt_request_id = request_id if len(prompts) == 1 else f"{request_id}-{prompt_index}"
            requests = child_requests(prompt_request_id, prompt, params,
                                      eos_token_id=info.eos_token_id,
                                      max_model_len=info.max_model_len)
            children: list[tuple[str, SamplingParams]] = []
            for request in requests:
                assert isinstance(request.sampling_params, SamplingParams)
                children.append((request.request_id, request.sampling_params))
            tracker = RequestTracker(prompt_request_id, prompt.prompt, prompt.prompt_token_ids,
                                     children, state.tokenizer)
            self.trackers.append(tracker)
            for sample_index, (child_id, child_params) in enumerate(children):
                self._children.append(_Child(
                    request_id=child_id,
                    choice_index=prompt_index * params.n + sample_index,
                    prompt_token_ids=prompt.prompt_token_ids,
                    params=child_params, tracker=tracker))

    @property
    def num_prompt_tokens(self) -> int:
        """Prompt tokens of the request, counted once per prompt (as vLLM's usage)."""
        return sum(len(t.output.prompt_token_ids) for t in self.trackers)

    @property
    def num_generated_tokens(self) -> int:
        return sum(len(child.completion.token_ids) for child in self._children)

    def choices(self) -> list[tuple[RequestOutput, CompletionOutput]]:
        """(prompt side, completion) per choice, in choice order."""
        return [(child.tracker.output, child.completion) for child in self._children]

    async def run_to_end(self) -> None:
        async for _ in self.stream():
            pass

    async def stream(self) -> AsyncGenerator[ChoiceDelta, None]:
        queue: asyncio.Queue[tuple[_Child, EngineCoreOutput | Exception | None]] = asyncio.Queue()
        pumps = {child.request_id: asyncio.ensure_future(self._pump(child, queue))
                 for child in self._children}
        unfinished = {child.request_id for child in self._children}
        try:
            while unfinished:
                child, item = await queue.get()
                if isinstance(item, Exception):
                    raise item
                if item is None:
                    if child.request_id in unfinished:
                        raise EngineDeadError(
                            f"the engine ended request {child.request_id!r} without a finish reason")
                    continue
                if child.request_id not in unfinished:
                    continue  # stopped here by a stop string; the engine has not seen the abort yet
                delta = self._apply(child, item)
                if delta.finish_reason is not None:
                    unfinished.discard(child.request_id)
                    if not item.is_finished:  # a stop string: end it in the engine too
                        pumps[child.request_id].cancel()
                        self._state.spawn(self._state.engine.abort([child.request_id]))
                yield delta
        finally:
            for pump in pumps.values():
                pump.cancel()
            if unfinished:
                self._state.spawn(self._state.engine.abort(sorted(unfinished)))

    async def _pump(self, child: _Child,
                    queue: asyncio.Queue[tuple[_Child, EngineCoreOutput | Exception | None]]) -> None:
        self._state.metrics.record_queued(time.monotonic() - self._arrival_s)
        try:
            async for output in self._state.engine.generate(
                    child.request_id, child.prompt_token_ids, child.params):
                queue.put_nowait((child, output))
        except Exception as error:  # handed to stream(), which raises it in the handler
            queue.put_nowait((child, error))
            return
        queue.put_nowait((child, None))

    def _apply(self, child: _Child, output: EngineCoreOutput) -> ChoiceDelta:
        completion = child.completion
        num_chars, num_tokens = len(completion.text), len(completion.token_ids)
        num_logprobs = len(completion.logprobs) if completion.logprobs is not None else 0
        is_first = not child.has_emitted
        child.has_emitted = True
        child.tracker.update(output)
        self._record(child, output)
        return ChoiceDelta(
            index=child.choice_index,
            request_output=child.tracker.output,
            text=completion.text[num_chars:],
            token_ids=completion.token_ids[num_tokens:],
            logprobs=None if completion.logprobs is None else completion.logprobs[num_logprobs:],
            finish_reason=completion.finish_reason,
            stop_reason=completion.stop_reason,
            is_first=is_first,
        )

    def _record(self, child: _Child, output: EngineCoreOutput) -> None:
        metrics = self._state.metrics
        now_s = time.monotonic()
        if output.new_token_ids:
            if child.last_output_s is None:
                metrics.record_first_token(len(child.prompt_token_ids), now_s - self._arrival_s)
            latency_s = None if child.last_output_s is None else now_s - child.last_output_s
            metrics.record_generated(len(output.new_token_ids), latency_s)
            child.last_output_s = now_s
        if child.completion.finish_reason is not None:
            metrics.record_finished(child.completion.finish_reason, now_s - self._arrival_s)


async def start_stream(run: GenerationRun) -> AsyncIterator[ChoiceDelta]:
    """Start `run` and wait for its first delta, so a failure before any output (the engine
    refusing the request, a full queue, a dead engine) can still be answered with an HTTP
    status; returns an iterator over every delta, the first included."""
    stream = run.stream()
    first = await anext(stream)

    async def chained() -> AsyncIterator[ChoiceDelta]:
        try:
            yield first
            async for delta in stream:
                yield delta
        finally:
            # No await before this point, so it runs even while the response is cancelled.
            await stream.aclose()

    return chained()
