"""POST /v1/completions: prompts as text or token ids, n, stop, logprobs, echo, streaming.

`echo` with `logprobs` returns the prompt's logprobs ahead of the completion's (the first
prompt token has none), and `max_tokens=0` with `echo` scores the prompt without returning new
text. lm-eval's loglikelihood requests (`echo=True, logprobs=1, max_tokens=1`, dropping the last
logprob) work as on vLLM; tests/integration runs lm-eval and GuideLLM against the server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi.responses import JSONResponse, StreamingResponse
from starlette.responses import Response

from tenon.frontend.input_processor import ProcessedPrompt, process_prompt
from tenon.outputs import CompletionOutput, PositionLogprobs, RequestOutput
from tenon.server.errors import from_engine_error
from tenon.server.generation import ChoiceDelta, GenerationRun, start_stream
from tenon.server.openai_protocol import (
    CompletionChoice,
    CompletionLogProbs,
    CompletionRequest,
    CompletionResponse,
    CompletionStreamResponse,
)
from tenon.server.serving_common import (
    SSE_DONE,
    ServerState,
    check_prompt_length,
    decode_tokens,
    new_request_id,
    refuse_unsupported,
    sse_event,
    token_text,
    usage_info,
)

# Logprobs of -inf do not survive JSON; vLLM clamps them to this.
MIN_LOGPROB = -9999.0


def completion_logprobs(token_ids: Sequence[int], positions: Sequence[PositionLogprobs | None],
                        num_top_logprobs: int, tokenizer: Any,
                        initial_text_offset: int = 0) -> CompletionLogProbs:
    """The legacy completions logprobs block; a position of None (the first prompt token)
    has no logprob. `top_logprobs` holds the chosen token and the `num_top_logprobs` best."""
    result = CompletionLogProbs()
    last_token_length = 0
    for token_id, position in zip(token_ids, positions, strict=True):
        if position is None:
            token = token_text(tokenizer, token_id)
            result.token_logprobs.append(None)
            result.top_logprobs.append(None)
        else:
            chosen = position[token_id]
            token = _decoded(tokenizer, token_id, chosen.decoded_token)
            result.token_logprobs.append(max(chosen.logprob, MIN_LOGPROB))
            result.top_logprobs.append({
                _decoded(tokenizer, top_id, top.decoded_token): max(top.logprob, MIN_LOGPROB)
                for rank, (top_id, top) in enumerate(position.items()) if rank <= num_top_logprobs
            })
        result.tokens.append(token)
        offset = result.text_offset[-1] + last_token_length if result.text_offset else initial_text_offset
        result.text_offset.append(offset)
        last_token_length = len(token)
    return result


def _decoded(tokenizer: Any, token_id: int, decoded: str | None) -> str:
    return decoded if decoded is not None else token_text(tokenizer, token_id)


def _prompts(state: ServerState, request: CompletionRequest) -> list[ProcessedPrompt]:
    prompt = request.prompt
    items: list[Any]
    if isinstance(prompt, str) or (prompt and all(isinstance(item, int) for item in prompt)):
        items = [prompt]
    else:
        items = list(prompt)
    if not items:
        raise ValueError("prompt is empty; send a string, a list of strings, or token ids")
    vocab_size = state.model_info.vocab_size
    processed = []
    for item in items:
        if isinstance(item, str):
            tokenizer = state.require_tokenizer("a text prompt")
            token_ids = list(tokenizer.encode(item, add_special_tokens=request.add_special_tokens))
            processed.append(process_prompt({"prompt_token_ids": token_ids, "prompt": item},
                                            tokenizer, vocab_size))
        else:
            processed.append(process_prompt({"prompt_token_ids": item}, state.tokenizer, vocab_size))
    return processed


def _prompt_text(state: ServerState, output: RequestOutput) -> str:
    if output.prompt is not None:
        return output.prompt
    tokenizer = state.require_tokenizer("echo")
    return decode_tokens(tokenizer, output.prompt_token_ids)


def _echoed(state: ServerState, request: CompletionRequest, prompt_side: RequestOutput,
            text: str, token_ids: list[int], positions: list[PositionLogprobs] | None,
            ) -> tuple[str, list[int], list[PositionLogprobs | None] | None]:
    """The text, ids and logprob positions of a choice (or its first delta) with echo."""
    prompt_text = _prompt_text(state, prompt_side)
    prompt_positions = prompt_side.prompt_logprobs
    if request.is_echo_only:
        return prompt_text, list(prompt_side.prompt_token_ids), prompt_positions
    all_positions = (None if positions is None or prompt_positions is None
                     else [*prompt_positions, *positions])
    return prompt_text + text, [*prompt_side.prompt_token_ids, *token_ids], all_positions


def _choice_fields(state: ServerState, request: CompletionRequest, prompt_side: RequestOutput,
                   text: str, token_ids: list[int], positions: list[PositionLogprobs] | None,
                   with_prompt: bool, text_offset: int) -> tuple[str, CompletionLogProbs | None]:
    all_positions: Sequence[PositionLogprobs | None] | None = positions
    if with_prompt:
        text, token_ids, all_positions = _echoed(state, request, prompt_side, text, token_ids,
                                                 positions)
    elif request.is_echo_only:
        text, token_ids, all_positions = "", [], []
    if request.logprobs is None or all_positions is None:
        return text, None
    return text, completion_logprobs(token_ids, all_positions, request.logprobs, state.tokenizer,
                                     text_offset)


def _finish_reason(request: CompletionRequest, completion_reason: str | None) -> str | None:
    # An echo-only request asked for 0 new tokens and got them.
    return "length" if request.is_echo_only and completion_reason is not None else completion_reason


async def create_completion(state: ServerState, request: CompletionRequest,
                            arrival_s: float) -> Response:
    state.check_healthy()
    model_name = state.resolve_model(request.model)
    refuse_unsupported(request)
    prompts = _prompts(state, request)
    params = request.to_sampling_params()
    max_tokens = 0 if request.is_echo_only else request.max_tokens
    for prompt in prompts:
        check_prompt_length(len(prompt.prompt_token_ids), max_tokens,
                            state.model_info.max_model_len)
    request_id = new_request_id("cmpl")
    run = GenerationRun(state, request_id, prompts, params, arrival_s=arrival_s)
    if request.stream:
        deltas = await start_stream(run)
        return StreamingResponse(_stream(state, request, run, request_id, model_name, deltas),
                                 media_type="text/event-stream")
    await run.run_to_end()
    choices = [_choice(state, request, index, prompt_side, completion)
               for index, (prompt_side, completion) in enumerate(run.choices())]
    num_generated_tokens = 0 if request.is_echo_only else run.num_generated_tokens
    response = CompletionResponse(id=request_id, model=model_name, choices=choices,
                                  usage=usage_info(run.num_prompt_tokens, num_generated_tokens))
    return JSONResponse(response.model_dump())


def _choice(state: ServerState, request: CompletionRequest, index: int,
            prompt_side: RequestOutput, completion: CompletionOutput) -> CompletionChoice:
    text, logprobs = _choice_fields(state, request, prompt_side, completion.text,
                                    completion.token_ids, completion.logprobs,
                                    with_prompt=request.echo, text_offset=0)
    return CompletionChoice(index=index, text=text, logprobs=logprobs,
                            finish_reason=_finish_reason(request, completion.finish_reason),
                            stop_reason=completion.stop_reason)


async def _stream(state: ServerState, request: CompletionRequest, run: GenerationRun,
                  request_id: str, model_name: str,
                  deltas: AsyncIterator[ChoiceDelta]) -> AsyncIterator[str]:
    # Offsets count token texts, as in the non-streamed answer, so both give the same offsets
    # even when a chunk's text holds back an unfinished character.
    next_offsets: dict[int, int] = {}
    try:
        async for delta in deltas:
            if not (delta.text or delta.token_ids or delta.finish_reason or delta.is_first):
                continue
            text, logprobs = _choice_fields(
                state, request, delta.request_output, delta.text, delta.token_ids, delta.logprobs,
                with_prompt=request.echo and delta.is_first,
                text_offset=next_offsets.get(delta.index, 0))
            if logprobs is not None and logprobs.tokens:
                next_offsets[delta.index] = logprobs.text_offset[-1] + len(logprobs.tokens[-1])
            choice = CompletionChoice(index=delta.index, text=text, logprobs=logprobs,
                                      finish_reason=_finish_reason(request, delta.finish_reason),
                                      stop_reason=delta.stop_reason)
            yield sse_event(CompletionStreamResponse(id=request_id, model=model_name,
                                                     choices=[choice]))
        if request.include_usage_in_stream:
            num_generated_tokens = 0 if request.is_echo_only else run.num_generated_tokens
            usage = usage_info(run.num_prompt_tokens, num_generated_tokens)
            yield sse_event(CompletionStreamResponse(id=request_id, model=model_name, choices=[],
                                                     usage=usage))
    except Exception as error:  # after the headers went out, errors travel as an SSE event
        yield sse_event(from_engine_error(error).body())
    yield SSE_DONE
