"""Request and response bodies of the OpenAI API, with vLLM's extra request fields.

Requests accept unknown fields and ignore them, as vLLM does, so clients that send fields this
server does not use keep working. Fields that would change the answer and are not supported
(`suffix`, `logit_bias`, structured `response_format`, non-text content parts) are refused
with a 400 that names them, never ignored.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tenon.sampling.params import SamplingParams


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class ResponseModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _now_s() -> int:
    return int(time.time())


class StreamOptions(RequestModel):
    include_usage: bool | None = True
    continuous_usage_stats: bool | None = False


class SamplingRequest(RequestModel):
    """Fields shared by /v1/completions and /v1/chat/completions."""

    model: str | None = None
    n: int = 1
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    min_tokens: int = 0
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    include_stop_str_in_output: bool = False
    echo: bool = False
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    logit_bias: dict[str, float] | None = None
    response_format: dict[str, Any] | None = None

    def refuse_unsupported(self) -> list[tuple[str, str]]:
        """(field, why) for each field set to something this server cannot honour."""
        refused = []
        if self.logit_bias:
            refused.append(("logit_bias", "logit_bias is not supported; leave it out"))
        if self.response_format and self.response_format.get("type", "text") != "text":
            refused.append(("response_format", "structured output (response_format other than "
                            "'text') is not supported; leave it out"))
        if self.stream_options is not None and not self.stream:
            refused.append(("stream_options", "stream_options is only allowed with stream=true"))
        return refused

    @property
    def include_usage_in_stream(self) -> bool:
        return bool(self.stream_options is not None and self.stream_options.include_usage)

    def sampling_params(
        self, *, max_tokens: int | None, logprobs: int | None, prompt_logprobs: int | None
    ) -> SamplingParams:
        """The engine's `SamplingParams`; ValueError names a bad field."""
        return SamplingParams(
            n=self.n,
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            top_k=0 if self.top_k is None else self.top_k,
            min_p=0.0 if self.min_p is None else self.min_p,
            presence_penalty=self.presence_penalty or 0.0,
            frequency_penalty=self.frequency_penalty or 0.0,
            repetition_penalty=1.0 if self.repetition_penalty is None else self.repetition_penalty,
            seed=self.seed,
            stop=self.stop,
            stop_token_ids=self.stop_token_ids,
            ignore_eos=self.ignore_eos,
            max_tokens=max_tokens,
            min_tokens=self.min_tokens,
            logprobs=logprobs,
            prompt_logprobs=prompt_logprobs,
            skip_special_tokens=self.skip_special_tokens,
            spaces_between_special_tokens=self.spaces_between_special_tokens,
            include_stop_str_in_output=self.include_stop_str_in_output,
        )


class CompletionRequest(SamplingRequest):
    prompt: list[int] | list[list[int]] | str | list[str]
    max_tokens: int | None = 16
    logprobs: int | None = None
    suffix: str | None = None
    best_of: int | None = None
    add_special_tokens: bool = True

    def refuse_unsupported(self) -> list[tuple[str, str]]:
        refused = super().refuse_unsupported()
        if self.suffix is not None:
            refused.append(("suffix", "suffix is not supported; leave it out"))
        if self.best_of is not None and self.best_of != self.n:
            refused.append(("best_of", f"best_of must equal n ({self.n}) or be left out"))
        if self.max_tokens == 0 and not self.echo:
            refused.append(("max_tokens", "max_tokens may be 0 only with echo=true "
                            "(to score the prompt); ask for at least 1 token"))
        return refused

    @property
    def is_echo_only(self) -> bool:
        """echo with max_tokens=0: return the prompt (and its logprobs), generate nothing."""
        return self.echo and self.max_tokens == 0

    def to_sampling_params(self) -> SamplingParams:
        # The engine always samples at least one token; an echo-only request throws it away.
        return self.sampling_params(
            max_tokens=1 if self.is_echo_only else self.max_tokens,
            logprobs=self.logprobs,
            prompt_logprobs=self.logprobs if self.echo else None,
        )


class ContentPart(RequestModel):
    type: str
    text: str | None = None


class ChatMessage(RequestModel):
    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None


class ChatCompletionRequest(SamplingRequest):
    messages: list[ChatMessage]
    max_tokens: int | None = Field(default=None, description="deprecated by OpenAI; still read")
    max_completion_tokens: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = 0
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    chat_template_kwargs: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None

    def refuse_unsupported(self) -> list[tuple[str, str]]:
        refused = super().refuse_unsupported()
        if self.tools:
            refused.append(("tools", "tool calling is not supported; leave tools out"))
        if self.top_logprobs and not self.logprobs:
            refused.append(("top_logprobs", "top_logprobs needs logprobs=true"))
        if self.continue_final_message and self.add_generation_prompt:
            refused.append(("continue_final_message", "continue_final_message needs "
                            "add_generation_prompt=false"))
        return refused

    @property
    def effective_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def to_sampling_params(self) -> SamplingParams:
        return self.sampling_params(
            max_tokens=self.effective_max_tokens,
            logprobs=(self.top_logprobs or 0) if self.logprobs else None,
            prompt_logprobs=None,
        )


class UsageInfo(ResponseModel):
    prompt_tokens: int = 0
    total_tokens: int = 0
    completion_tokens: int = 0


class CompletionLogProbs(ResponseModel):
    text_offset: list[int] = Field(default_factory=list)
    token_logprobs: list[float | None] = Field(default_factory=list)
    tokens: list[str] = Field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] = Field(default_factory=list)


class CompletionChoice(ResponseModel):
    index: int
    text: str
    logprobs: CompletionLogProbs | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


class CompletionResponse(ResponseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=_now_s)
    model: str
    choices: list[CompletionChoice]
    usage: UsageInfo | None = None


class CompletionStreamResponse(CompletionResponse):
    """One SSE chunk: the same fields, `usage` only on the last chunk (stream_options)."""


class ChatLogProb(ResponseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class ChatLogProbsContent(ChatLogProb):
    top_logprobs: list[ChatLogProb] = Field(default_factory=list)


class ChatCompletionLogProbs(ResponseModel):
    content: list[ChatLogProbsContent] | None = None


class ChatResponseMessage(ResponseModel):
    role: str = "assistant"
    content: str | None = None


class ChatCompletionChoice(ResponseModel):
    index: int
    message: ChatResponseMessage
    logprobs: ChatCompletionLogProbs | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


class ChatCompletionResponse(ResponseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=_now_s)
    model: str
    choices: list[ChatCompletionChoice]
    usage: UsageInfo


class DeltaMessage(ResponseModel):
    role: str | None = None
    content: str | None = None


class ChatCompletionStreamChoice(ResponseModel):
    index: int
    delta: DeltaMessage
    logprobs: ChatCompletionLogProbs | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


class ChatCompletionStreamResponse(ResponseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = Field(default_factory=_now_s)
    model: str
    choices: list[ChatCompletionStreamChoice]
    usage: UsageInfo | None = None


class ModelCard(ResponseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=_now_s)
    owned_by: str = "tenon"
    root: str | None = None
    parent: str | None = None
    max_model_len: int | None = None


class ModelList(ResponseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class TokenizeRequest(RequestModel):
    """Either `prompt` (as /v1/completions) or `messages` (as /v1/chat/completions)."""

    model: str | None = None
    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    add_special_tokens: bool | None = None
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    chat_template_kwargs: dict[str, Any] | None = None


class TokenizeResponse(ResponseModel):
    count: int
    max_model_len: int
    tokens: list[int]


class DetokenizeRequest(RequestModel):
    model: str | None = None
    tokens: list[int]


class DetokenizeResponse(ResponseModel):
    prompt: str
