"""Logprobs of sampled and prompt tokens, with ranks and the top alternatives.

Logprobs come from the raw logits (log_softmax before penalties, temperature or filters), as in
vLLM, so they describe the model's distribution rather than the sampling one.
"""

from __future__ import annotations

import torch


def gather_logprobs(
    logprobs: torch.Tensor, token_ids: torch.Tensor, num_logprobs: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The chosen token's logprob and rank, beside the `num_logprobs` most likely tokens.

    logprobs: float32 [num_tokens, vocab_size]; token_ids: int64 [num_tokens]
    Returns
        ids: int64 [num_tokens, num_logprobs + 1], the chosen token first, then the top tokens
        values: float32 [num_tokens, num_logprobs + 1], their logprobs
        ranks: int64 [num_tokens], 1 = the most likely token (ties share the worse rank)
    """
    # top_values, top_ids: [num_tokens, num_logprobs]
    top_values, top_ids = logprobs.topk(num_logprobs, dim=-1)
    # token_logprobs: [num_tokens, 1]
    token_logprobs = logprobs.gather(1, token_ids.unsqueeze(1))
    ranks = (logprobs >= token_logprobs).sum(dim=-1)
    ids = torch.cat([token_ids.unsqueeze(1), top_ids], dim=1)
    values = torch.cat([token_logprobs, top_values], dim=1)
    return ids, values, ranks


def compute_prompt_logprobs(
    logits: torch.Tensor, target_token_ids: torch.Tensor, num_logprobs: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logprobs for prompt tokens: position t of `logits` predicts `target_token_ids[t]`.

    logits: [num_tokens, vocab_size] (any float dtype; computed in float32)
    target_token_ids: int64 [num_tokens]
    Returns token_logprobs float32 [num_tokens], ranks int64 [num_tokens] (1 = best),
    top_ids int64 [num_tokens, num_logprobs], top_logprobs float32 [num_tokens, num_logprobs].
    """
    if num_logprobs < 0:
        raise ValueError(f"num_logprobs must be >= 0, got {num_logprobs}")
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    ids, values, ranks = gather_logprobs(logprobs, target_token_ids.to(torch.int64), num_logprobs)
    return values[:, 0], ranks, ids[:, 1:], values[:, 1:]
