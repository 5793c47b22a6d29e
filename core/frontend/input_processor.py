"""Turning user prompts into engine requests: tokenize, validate, fan out `n`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from tenon.engine.request import Request
from tenon.sampling.params import SamplingParams, validate_logprobs

MAX_LOGPROBS = 20  # as vLLM's default --max-logprobs

PromptInput = str | Mapping[str, Any]


@attrs.frozen(kw_only=True)
class ProcessedPrompt:
    prompt: str | None
    prompt_token_ids: list[int]


def process_prompt(prompt: PromptInput, tokenizer: Any | None, vocab_size: int) -> ProcessedPrompt:
    """A string is tokenized; `{"prompt_token_ids": [...]}` is taken as is (checked)."""
    if isinstance(prompt, str):
        if tokenizer is None:
            raise ValueError(
                "this model has no tokenizer, so text prompts cannot be encoded; pass "
                '{"prompt_token_ids": [...]} or give --tokenizer'
            )
        token_ids = list(tokenizer.encode(prompt))
        text: str | None = prompt
    elif isinstance(prompt, Mapping) and "prompt_token_ids" in prompt:
        token_ids = [int(t) for t in prompt["prompt_token_ids"]]
        text = prompt.get("prompt")
    else:
        raise ValueError(
            f"a prompt must be a string or a dict with 'prompt_token_ids', got {type(prompt).__name__}"
        )
    if not token_ids:
        raise ValueError("the prompt is empty; give at least one token")
    bad = [t for t in token_ids if not 0 <= t < vocab_size]
    if bad:
        raise ValueError(f"prompt token id {bad[0]} is outside the vocabulary (0..{vocab_size - 1})")
    return ProcessedPrompt(prompt=text, prompt_token_ids=token_ids)


def child_requests(
    request_id: str,
    prompt: ProcessedPrompt,
    params: SamplingParams,
    *,
    eos_token_id: int | None,
    max_model_len: int,
) -> list[Request]:
    """One engine request per sample (`n`); child i of a seeded request uses seed + i."""
    validate_logprobs(params, MAX_LOGPROBS)
    num_prompt_tokens = len(prompt.prompt_token_ids)
    if num_prompt_tokens >= max_model_len:
        raise ValueError(
            f"the prompt has {num_prompt_tokens} tokens but --max-model-len is {max_model_len} "
            "(room is needed for at least one new token); shorten the prompt or raise --max-model-len"
        )
    children = []
    for index in range(params.n):
        child_params = params if params.n == 1 else params.clone(
            n=1, seed=None if params.seed is None else params.seed + index
        )
        children.append(
            Request(
                request_id if params.n == 1 else f"{index}_{request_id}",
                prompt.prompt_token_ids,
                child_params,
                eos_token_id=eos_token_id,
            )
        )
    return children


def apply_chat_template(
    tokenizer: Any | None,
    messages: Sequence[Mapping[str, Any]],
    *,
    add_generation_prompt: bool = True,
    continue_final_message: bool = False,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> list[int]:
    """The token ids of a conversation rendered by the tokenizer's chat template.

    The template writes the special tokens itself, so the text is encoded without adding any.
    """
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ValueError("this model has no chat template; send a plain prompt instead")
    import jinja2

    try:
        text = tokenizer.apply_chat_template(
            [dict(message) for message in messages],
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final_message,
            **dict(chat_template_kwargs or {}),
        )
    except jinja2.TemplateError as error:
        # Templates reject conversations they cannot render (roles out of order, ...).
        raise ValueError(f"the chat template refused these messages: {error}") from error
    return list(tokenizer.encode(text, add_special_tokens=False))


def normalise_prompts(prompts: PromptInput | Sequence[PromptInput]) -> list[PromptInput]:
    if isinstance(prompts, str | Mapping):
        return [prompts]
    return list(prompts)
