"""Engine outputs to user outputs: detokenize incrementally, apply stop strings, gather `n`.

Stop strings live here, in the frontend that owns the text: when one matches, the request is
finished here and its id is returned so the caller aborts it in the engine core.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from tenon.engine.scheduler_output import EngineCoreOutput
from tenon.output.detokenizer import IncrementalDetokenizer
from tenon.output.stop_checker import StopStringMatcher
from tenon.outputs import CompletionOutput, Logprob, PositionLogprobs, RequestOutput
from tenon.sampling.params import SamplingParams


def _to_position_logprobs(entry: Any, tokenizer: Any | None) -> PositionLogprobs:
    token_ids, logprobs, rank = entry
    position: PositionLogprobs = {}
    for index, (token_id, logprob) in enumerate(zip(token_ids, logprobs, strict=True)):
        if token_id in position:
            continue
        decoded = tokenizer.decode([token_id]) if tokenizer is not None else None
        position[token_id] = Logprob(logprob=logprob, rank=rank if index == 0 else index, decoded_token=decoded)
    return position


@attrs.define
class _Child:
    output: CompletionOutput
    params: SamplingParams
    detokenizer: IncrementalDetokenizer | None
    matcher: StopStringMatcher | None


class RequestTracker:
    """One user request (possibly `n` engine requests) from submission to its final output."""

    def __init__(self, request_id: str, prompt: str | None, prompt_token_ids: list[int],
                 children: list[tuple[str, SamplingParams]], tokenizer: Any | None) -> None:
        self.output = RequestOutput(request_id=request_id, prompt=prompt,
                                    prompt_token_ids=prompt_token_ids, outputs=[])
        self.tokenizer = tokenizer
        self.children: dict[str, _Child] = {}
        for index, (child_id, params) in enumerate(children):
            detokenize = tokenizer is not None and params.detokenize
            completion = CompletionOutput(index=index, logprobs=[] if params.logprobs is not None else None,
                                          cumulative_logprob=0.0 if params.logprobs is not None else None)
            self.output.outputs.append(completion)
            self.children[child_id] = _Child(
                output=completion, params=params,
                detokenizer=IncrementalDetokenizer(
                    tokenizer, prompt_token_ids, skip_special_tokens=params.skip_special_tokens,
                    spaces_between_special_tokens=params.spaces_between_special_tokens,
                ) if detokenize else None,
                matcher=StopStringMatcher(params.stop, params.include_stop_str_in_output)
                if detokenize and params.stop else None,
            )

    def update(self, engine_output: EngineCoreOutput) -> bool:
        """Apply one engine output; True when a stop string finished the child here."""
        child = self.children[engine_output.request_id]
        completion = child.output
        if completion.finished:
            return False
        self.output.num_cached_tokens = engine_output.num_cached_tokens
        if engine_output.prompt_logprobs is not None:
            self.output.prompt_logprobs = [
                None if entry is None else _to_position_logprobs(entry, self.tokenizer)
                for entry in engine_output.prompt_logprobs  # type: ignore[attr-defined]
            ]
        completion.token_ids.extend(engine_output.new_token_ids)
        if engine_output.logprobs is not None and completion.logprobs is not None:
            for entry in engine_output.logprobs:  # type: ignore[attr-defined]
                position = _to_position_logprobs(entry, self.tokenizer)
                completion.logprobs.append(position)
                completion.cumulative_logprob = (completion.cumulative_logprob or 0.0) + entry[1][0]
        stopped_here = False
        if child.detokenizer is not None:
            delta = child.detokenizer.add_tokens(engine_output.new_token_ids)
            if engine_output.is_finished:
                delta += child.detokenizer.finish()
            stopped_here = self._emit(child, delta, final=engine_output.is_finished)
        if stopped_here:
            completion.finish_reason = "stop"
        elif engine_output.is_finished:
            completion.finish_reason = engine_output.finish_reason
            completion.stop_reason = engine_output.stop_reason
        self.output.finished = all(c.output.finished for c in self.children.values())
        return stopped_here

    def _emit(self, child: _Child, delta: str, *, final: bool) -> bool:
        if child.matcher is None:
            child.output.text += delta
            return False
        result = child.matcher.feed(delta)
        child.output.text += result.text_to_emit
        if result.stopped:
            child.output.stop_reason = result.stop_reason
            return True
        if final:
            child.output.text += child.matcher.finish()
        return False


class OutputProcessor:
    def __init__(self, tokenizer: Any | None) -> None:
        self.tokenizer = tokenizer
        self.trackers: dict[str, RequestTracker] = {}  # child request id -> tracker

    def add(self, tracker: RequestTracker) -> None:
        for child_id in tracker.children:
            self.trackers[child_id] = tracker

    def forget(self, child_ids: Iterable[str]) -> None:
        for child_id in child_ids:
            self.trackers.pop(child_id, None)

    def process(self, engine_outputs: Iterable[EngineCoreOutput]) -> tuple[list[RequestOutput], list[str]]:
        """(user requests that finished with this batch, child ids to abort in the engine)."""
        finished: list[RequestOutput] = []
        to_abort: list[str] = []
        for engine_output in engine_outputs:
            tracker = self.trackers.get(engine_output.request_id)
            if tracker is None:
                continue
            if tracker.update(engine_output):
                to_abort.append(engine_output.request_id)
            child = tracker.children[engine_output.request_id]
            if child.output.finished:
                del self.trackers[engine_output.request_id]
                if tracker.output.finished:
                    finished.append(tracker.output)
        return finished, to_abort
