"""The sampler: one batch of logits in, one token per row out, in vLLM's order of stages.

    raw logprobs -> penalties -> (greedy: argmax) -> temperature -> min-p -> top-k -> top-p
    -> exponential-race sample

The only per-row Python work is one draw per seeded row, so a seeded row's noise does not depend on
which other rows share the batch.
"""

from __future__ import annotations

import attrs
import torch

from tenon.sampling.argmax import vocab_argmax
from tenon.sampling.filters import apply_min_p, apply_temperature, apply_top_k_top_p
from tenon.sampling.logprobs import compute_prompt_logprobs, gather_logprobs
from tenon.sampling.metadata import SamplingMetadata
from tenon.sampling.params import GREEDY_TEMPERATURE_EPS
from tenon.sampling.penalties import apply_penalties

__all__ = ["Sampler", "SamplerOutput", "compute_prompt_logprobs", "random_sample"]


@attrs.frozen
class SamplerOutput:
    """Sampled tokens of one step; the logprob fields are None unless some row asked for them.

    The logprob tensors have `max_num_logprobs + 1` columns for every row; a row that asked for
    fewer reads the first `logprobs + 1`.
    """

    sampled_token_ids: torch.Tensor  # int64 [num_reqs]
    logprob_token_ids: torch.Tensor | None = None  # int64 [num_reqs, k + 1], sampled first
    logprobs: torch.Tensor | None = None  # float32 [num_reqs, k + 1]
    sampled_token_ranks: torch.Tensor | None = None  # int64 [num_reqs], 1 = best raw logit


def random_sample(
    probs: torch.Tensor,
    generators: dict[int, torch.Generator],
    shared_generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one token per row by the exponential race: argmax(probs / q), q ~ Exp(1).

    This picks token i with probability probs[i] and needs no cumulative sum or device sync.
    Rows in `generators` draw their q from their own generator, one [vocab_size] draw each,
    so the result is the same in any batch; the other rows share `shared_generator`.

    probs: float32 [num_reqs, vocab_size] -> token ids int64 [num_reqs]
    """
    # q: [num_reqs, vocab_size]
    q = torch.empty_like(probs)
    if len(generators) < probs.shape[0]:
        q.exponential_(generator=shared_generator)
    for row_index, generator in generators.items():
        q[row_index].exponential_(generator=generator)
    # A zero draw would make 0 / 0 = nan win the argmax for a masked token.
    q.clamp_(min=torch.finfo(q.dtype).tiny)
    return vocab_argmax(probs.div(q))


class Sampler:
    """Turns `[num_reqs, vocab_size]` float32 logits into `SamplerOutput` for one step.

    Stateless; the caller passes a fresh `SamplingMetadata` each step. `logits` is not modified.
    """

    def __call__(self, logits: torch.Tensor, metadata: SamplingMetadata) -> SamplerOutput:
        # logits: [num_reqs, vocab_size]
        logits = logits.float()
        raw_logprobs = None
        if metadata.max_num_logprobs is not None:
            raw_logprobs = torch.log_softmax(logits, dim=-1)

        if metadata.min_tokens_masks:
            # vLLM's min_tokens: EOS and stop tokens cannot be sampled before min_tokens.
            logits = logits.clone()
            for row_index, token_ids in metadata.min_tokens_masks:
                logits[row_index, list(token_ids)] = float("-inf")

        if not metadata.no_penalties:
            assert metadata.output_token_ids is not None
            logits = apply_penalties(
                logits,
                metadata.prompt_token_ids,
                metadata.output_token_ids,
                metadata.presence_penalties,
                metadata.frequency_penalties,
                metadata.repetition_penalties,
            )

        if metadata.all_greedy:
            sampled_token_ids = vocab_argmax(logits)
        else:
            sampled_token_ids = self._sample_random(logits, metadata)
            if not metadata.all_random:
                is_greedy = metadata.temperature < GREEDY_TEMPERATURE_EPS
                sampled_token_ids = torch.where(is_greedy, vocab_argmax(logits), sampled_token_ids)

        if raw_logprobs is None:
            return SamplerOutput(sampled_token_ids=sampled_token_ids)
        assert metadata.max_num_logprobs is not None
        ids, values, ranks = gather_logprobs(
            raw_logprobs, sampled_token_ids, metadata.max_num_logprobs
        )
        return SamplerOutput(
            sampled_token_ids=sampled_token_ids,
            logprob_token_ids=ids,
            logprobs=values,
            sampled_token_ranks=ranks,
        )

    def _sample_random(self, logits: torch.Tensor, metadata: SamplingMetadata) -> torch.Tensor:
        # logits: [num_reqs, vocab_size], already penalised
        logits = apply_temperature(logits, metadata.temperature)
        if not metadata.no_min_p:
            logits = apply_min_p(logits, metadata.min_p)
        if not (metadata.no_top_k and metadata.no_top_p):
            logits = apply_top_k_top_p(
                logits,
                None if metadata.no_top_k else metadata.top_k,
                None if metadata.no_top_p else metadata.top_p,
                max_top_k=metadata.max_top_k,
                num_candidates=metadata.max_top_k if metadata.all_top_k else None,
            )
        probs = torch.softmax(logits, dim=-1)
        return random_sample(probs, metadata.generators, metadata.shared_generator)
