"""Repetition, presence and frequency penalties (vLLM / OpenAI / HF semantics).

    repetition (prompt and output tokens seen):  logit / r if logit > 0 else logit * r
    presence, frequency (output tokens only):    logit - presence * (count > 0) - frequency * count
"""

from __future__ import annotations

import torch


def count_token_ids(token_ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Per-row occurrence counts of each token id; padding (id == vocab_size) is dropped.

    token_ids: int64 [num_reqs, max_len] -> counts: int32 [num_reqs, vocab_size]
    """
    num_reqs = token_ids.shape[0]
    # One spare column absorbs the padding id so no mask is needed.
    counts = torch.zeros(num_reqs, vocab_size + 1, dtype=torch.int32, device=token_ids.device)
    counts.scatter_add_(1, token_ids, torch.ones_like(token_ids, dtype=torch.int32))
    return counts[:, :vocab_size]


def apply_penalties(
    logits: torch.Tensor,
    prompt_token_ids: torch.Tensor | None,
    output_token_ids: torch.Tensor,
    presence_penalties: torch.Tensor,
    frequency_penalties: torch.Tensor,
    repetition_penalties: torch.Tensor,
) -> torch.Tensor:
    """Return penalised logits; `logits` is not modified.

    logits: float32 [num_reqs, vocab_size]
    prompt_token_ids: int64 [num_reqs, max_prompt_len], pad = vocab_size; None when every
        repetition penalty is 1
    output_token_ids: int64 [num_reqs, max_output_len], pad = vocab_size
    presence_penalties, frequency_penalties, repetition_penalties: float32 [num_reqs]
    """
    vocab_size = logits.shape[1]
    # output_counts: [num_reqs, vocab_size]
    output_counts = count_token_ids(output_token_ids, vocab_size)
    output_seen = output_counts > 0

    if prompt_token_ids is not None:
        # seen: [num_reqs, vocab_size], tokens in the prompt or the output so far
        seen = count_token_ids(prompt_token_ids, vocab_size) > 0
        seen |= output_seen
        # penalty: [num_reqs, vocab_size]; 1.0 where the token was not seen
        penalty = torch.where(seen, repetition_penalties.unsqueeze(1), 1.0)
        logits = torch.where(logits > 0, logits / penalty, logits * penalty)
    else:
        logits = logits.clone()

    logits -= frequency_penalties.unsqueeze(1) * output_counts
    logits -= presence_penalties.unsqueeze(1) * output_seen
    return logits
