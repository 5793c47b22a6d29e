"""Temperature, min-p, top-k and top-p on a batch of logits; each row has its own values.

Filters mask tokens by setting their logit to -inf. Every function returns a new tensor and leaves
its input unchanged, so each stage can be tested on its own.
"""

from __future__ import annotations

import torch

from tenon.sampling.params import GREEDY_TEMPERATURE_EPS


def apply_temperature(logits: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """logits / temperature per row; greedy rows (temperature ~ 0) are divided by 1 instead.

    logits: float32 [num_reqs, vocab_size]; temperature: float32 [num_reqs]
    """
    # Greedy rows take their token before this stage; dividing by 1 keeps them finite.
    safe_temperature = torch.where(temperature < GREEDY_TEMPERATURE_EPS, 1.0, temperature)
    return logits / safe_temperature.unsqueeze(1)


def apply_min_p(logits: torch.Tensor, min_p: torch.Tensor) -> torch.Tensor:
    """Drop tokens whose probability is below min_p * (the row's top probability).

    logits: float32 [num_reqs, vocab_size]; min_p: float32 [num_reqs], 0 = off
    """
    probs = torch.softmax(logits, dim=-1)
    # threshold: [num_reqs, 1]
    threshold = probs.amax(dim=-1, keepdim=True) * min_p.unsqueeze(1)
    return logits.masked_fill(probs < threshold, float("-inf"))


def apply_top_k(
    logits: torch.Tensor, top_k: torch.Tensor, max_top_k: int | None = None
) -> torch.Tensor:
    """Keep each row's `top_k` largest logits (ties with the k-th are kept); 0 = keep all.

    logits: float32 [num_reqs, vocab_size]; top_k: int32 [num_reqs]
    max_top_k: the largest top_k, when the caller knows it on the host (avoids a device sync).
    """
    vocab_size = logits.shape[1]
    top_k = top_k.to(torch.int64)
    if max_top_k is None:
        max_top_k = int(top_k.max())
    max_top_k = min(max_top_k, vocab_size)
    if max_top_k <= 0:
        return logits.clone()
    # top_values: [num_reqs, max_top_k], descending
    top_values = logits.topk(max_top_k, dim=-1).values
    kth_index = (top_k.clamp(min=1, max=max_top_k) - 1).unsqueeze(1)
    # threshold: [num_reqs, 1]; -inf for rows without top-k so nothing is dropped
    threshold = top_values.gather(1, kth_index)
    threshold = threshold.masked_fill((top_k <= 0).unsqueeze(1), float("-inf"))
    return logits.masked_fill(logits < threshold, float("-inf"))


def apply_top_k_top_p(
    logits: torch.Tensor,
    top_k: torch.Tensor | None,
    top_p: torch.Tensor | None,
    max_top_k: int | None = None,
    num_candidates: int | None = None,
) -> torch.Tensor:
    """Top-k, then top-p (nucleus) over the distribution that top-k left. None skips a stage.

    Top-p keeps, per row, the smallest set of most likely tokens whose probability sums to at
    least top_p; the most likely token is always kept, and so is every token tied with the least
    likely one kept (the result never depends on how a sort orders ties).

    logits: float32 [num_reqs, vocab_size]
    top_k: int32 [num_reqs], 0 = off; top_p: float32 [num_reqs], 1.0 = off
    max_top_k: the largest top_k, if known on the host (used when top_p is None).
    num_candidates: when the host knows every row's top_k is in [1, num_candidates], top-p looks
        only at that many best tokens instead of sorting the whole vocabulary.
    """
    if top_p is None:
        if top_k is None:
            return logits.clone()
        # Without top-p no sort is needed.
        return apply_top_k(logits, top_k, max_top_k)

    vocab_size = logits.shape[1]
    # candidates: [num_reqs, num_candidates or vocab_size], descending
    if top_k is not None and num_candidates is not None and num_candidates < vocab_size:
        candidates = logits.topk(num_candidates, dim=-1).values
    else:
        candidates = logits.sort(dim=-1, descending=True).values
    if top_k is not None:
        top_k = top_k.to(torch.int64)
        top_k = torch.where(top_k <= 0, vocab_size, top_k).clamp(max=candidates.shape[1])
        kth_value = candidates.gather(1, (top_k - 1).unsqueeze(1))
        candidates = candidates.masked_fill(candidates < kth_value, float("-inf"))

    candidate_probs = torch.softmax(candidates, dim=-1)
    # mass_before: probability of all strictly more likely candidates; a token is dropped once
    # the tokens above it already reach top_p, so the first one (mass_before = 0) always stays.
    mass_before = candidate_probs.cumsum(dim=-1) - candidate_probs
    drop = mass_before >= top_p.unsqueeze(1)
    # Rounding can push the running sum to 1 before the tail; top_p == 1 must drop nothing.
    drop &= (top_p < 1.0).unsqueeze(1)
    drop |= candidates == float("-inf")
    # cutoff: [num_reqs, 1], the smallest kept logit; one compare maps the kept set back to the
    # vocabulary, with no scatter.
    cutoff = candidates.masked_fill(drop, float("inf")).amin(dim=-1, keepdim=True)
    return logits.masked_fill(logits < cutoff, float("-inf"))
