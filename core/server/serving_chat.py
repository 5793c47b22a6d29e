"""POST /v1/chat/completions: the chat template, n, stop, logprobs in chat form, streaming."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from http import HTTPStatus
from typing import Any

from fastapi.responses import JSONResponse, StreamingResponse
from starlette.responses import Response

from tenon.frontend.input_processor import apply_chat_template, process_prompt
from tenon.outputs import PositionLogprobs
from tenon.server.errors import OpenAIError, from_engine_error
from tenon.server.generation import ChoiceDelta, GenerationRun, start_stream
from tenon.server.openai_protocol import (
    ChatCompletionChoice,
    ChatCompletionLogProbs,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionStreamChoice,
    ChatCompletionStreamResponse,
    ChatLogProb,
    ChatLogProbsContent,
    ChatMessage,
    ChatResponseMessage,
    DeltaMessage,
)
from tenon.server.serving_common import (
    SSE_DONE,
    ServerState,
    check_prompt_length,
    new_request_id,
    refuse_unsupported,
    sse_event,
    token_text,
    usage_info,
)
from tenon.server.serving_completions import MIN_LOGPROB


def message_dicts(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """Messages as the chat template reads them; text content parts are joined by newlines."""
    result = []
    for index, message in enumerate(messages):
        content = message.content
        if isinstance(content, list):
            texts = []
            for part in content:
                if part.type != "text" or part.text is None:
                    raise OpenAIError(f"content part type {part.type!r} is not supported (in "
                                      f"messages[{index}]); send text parts only",
                                      HTTPStatus.BAD_REQUEST, param="messages")
                texts.append(part.text)
            content = "\n".join(texts)
        entry: dict[str, Any] = {"role": message.role, "content": content or ""}
        if message.name is not None:
            entry["name"] = message.name
        result.append(entry)
    return result


def chat_logprobs(token_ids: Sequence[int], positions: Sequence[PositionLogprobs],
                  num_top_logprobs: int, tokenizer: Any) -> ChatCompletionLogProbs:
    """One entry per token; `top_logprobs` lists the first `num_top_logprobs` of the
    position's tokens (the chosen one first), as vLLM does."""
    content = []
    for token_id, position in zip(token_ids, positions, strict=True):
        chosen = position[token_id]
        top = [_chat_logprob(tokenizer, top_id, entry.decoded_token, entry.logprob)
               for rank, (top_id, entry) in enumerate(position.items()) if rank < num_top_logprobs]
        head = _chat_logprob(tokenizer, token_id, chosen.decoded_token, chosen.logprob)
        content.append(ChatLogProbsContent(token=head.token, logprob=head.logprob,
                                           bytes=head.bytes, top_logprobs=top))
    return ChatCompletionLogProbs(content=content)


def _chat_logprob(tokenizer: Any, token_id: int, decoded: str | None, logprob: float) -> ChatLogProb:
    token = decoded if decoded is not None else token_text(tokenizer, token_id)
    return ChatLogProb(token=token, logprob=max(logprob, MIN_LOGPROB),
                       bytes=list(token.encode("utf-8", errors="replace")))


def _response_role(request: ChatCompletionRequest) -> str:
    return "assistant" if request.add_generation_prompt else request.messages[-1].role


def _echo_text(request: ChatCompletionRequest, messages: list[dict[str, Any]]) -> str:
    """With echo, the last message's content when it has the response's role (vLLM's rule)."""
    if not request.echo or not messages or messages[-1]["role"] != _response_role(request):
        return ""
    return str(messages[-1]["content"])


async def create_chat_completion(state: ServerState, request: ChatCompletionRequest,
                                 arrival_s: float) -> Response:
    state.check_healthy()
    model_name = state.resolve_model(request.model)
    refuse_unsupported(request)
    tokenizer = state.require_tokenizer("chat")
    messages = message_dicts(request.messages)
    prompt_token_ids = apply_chat_template(
        tokenizer, messages, add_generation_prompt=request.add_generation_prompt,
        continue_final_message=request.continue_final_message,
        chat_template_kwargs=request.chat_template_kwargs)
    prompt = process_prompt({"prompt_token_ids": prompt_token_ids}, tokenizer,
                            state.model_info.vocab_size)
    params = request.to_sampling_params()
    check_prompt_length(len(prompt_token_ids), request.effective_max_tokens,
                        state.model_info.max_model_len)
    request_id = new_request_id("chatcmpl")
    run = GenerationRun(state, request_id, [prompt], params, arrival_s=arrival_s)
    echo_text = _echo_text(request, messages)
    if request.stream:
        deltas = await start_stream(run)
        return StreamingResponse(
            _stream(state, request, run, request_id, model_name, echo_text, deltas),
            media_type="text/event-stream")
    await run.run_to_end()
    choices = []
    for index, (_, completion) in enumerate(run.choices()):
        logprobs = None
        if request.logprobs and completion.logprobs is not None:
            logprobs = chat_logprobs(completion.token_ids, completion.logprobs,
                                     request.top_logprobs or 0, tokenizer)
        choices.append(ChatCompletionChoice(
            index=index,
            message=ChatResponseMessage(role=_response_role(request),
                                        content=echo_text + completion.text),
            logprobs=logprobs, finish_reason=completion.finish_reason,
            stop_reason=completion.stop_reason))
    response = ChatCompletionResponse(
        id=request_id, model=model_name, choices=choices,
        usage=usage_info(run.num_prompt_tokens, run.num_generated_tokens))
    return JSONResponse(response.model_dump())


async def _stream(state: ServerState, request: ChatCompletionRequest, run: GenerationRun,
                  request_id: str, model_name: str, echo_text: str,
                  deltas: AsyncIterator[ChoiceDelta]) -> AsyncIterator[str]:
    created = int(time.time())

    def chunk(choice: ChatCompletionStreamChoice) -> str:
        # Unset fields are left out (a delta carries only what it adds); the header fields are
        # set explicitly so they stay.
        response = ChatCompletionStreamResponse(id=request_id, object="chat.completion.chunk",
                                                created=created, model=model_name,
                                                choices=[choice])
        return sse_event(response, exclude_unset=True)

    role = _response_role(request)
    try:
        async for delta in deltas:
            if delta.is_first:
                # The role goes out first, alone, as OpenAI and vLLM send it.
                yield chunk(ChatCompletionStreamChoice(
                    index=delta.index, delta=DeltaMessage(role=role, content=""),
                    logprobs=None, finish_reason=None))
                if echo_text:
                    yield chunk(ChatCompletionStreamChoice(
                        index=delta.index, delta=DeltaMessage(content=echo_text),
                        logprobs=None, finish_reason=None))
            if not (delta.text or delta.token_ids or delta.finish_reason):
                continue
            logprobs = None
            if request.logprobs and delta.logprobs is not None:
                logprobs = chat_logprobs(delta.token_ids, delta.logprobs,
                                         request.top_logprobs or 0, state.tokenizer)
            choice = ChatCompletionStreamChoice(index=delta.index,
                                                delta=DeltaMessage(content=delta.text),
                                                logprobs=logprobs,
                                                finish_reason=delta.finish_reason)
            if delta.finish_reason is not None:
                choice.stop_reason = delta.stop_reason
            yield chunk(choice)
        if request.include_usage_in_stream:
            usage = usage_info(run.num_prompt_tokens, run.num_generated_tokens)
            response = ChatCompletionStreamResponse(id=request_id, object="chat.completion.chunk",
                                                    created=created, model=model_name, choices=[],
                                                    usage=usage)
            yield sse_event(response, exclude_unset=True)
    except Exception as error:  # after the headers went out, errors travel as an SSE event
        yield sse_event(from_engine_error(error).body())
    yield SSE_DONE
