"""min_tokens: EOS and stop tokens cannot be sampled before min_tokens outputs (vLLM's rule)."""

from __future__ import annotations

import torch

from tenon.sampling.metadata import SamplingRow, build_sampling_metadata
from tenon.sampling.params import SamplingParams
from tenon.sampling.sampler import Sampler

EOS = 3


def _sample(params: SamplingParams, num_outputs: int, logits: torch.Tensor) -> int:
    row = SamplingRow(params, [1, 2], [7] * num_outputs, EOS)
    metadata = build_sampling_metadata([row], vocab_size=logits.shape[-1], device="cpu")
    return int(Sampler()(logits, metadata).sampled_token_ids[0])


def test_eos_and_stop_tokens_masked_until_min_tokens() -> None:
    logits = torch.randn(1, 16)
    logits[0, EOS] = 50.0  # EOS is by far the best
    logits[0, 9] = 40.0  # then a stop token
    params = SamplingParams(temperature=0.0, min_tokens=2, max_tokens=5, stop_token_ids=[9])
    first = _sample(params, 0, logits)
    assert first not in (EOS, 9)
    allowed = logits.clone()
    allowed[0, [EOS, 9]] = float("-inf")
    assert first == int(allowed.argmax())
    assert _sample(params, 2, logits) == EOS


def test_ignore_eos_keeps_eos_unmasked_by_min_tokens() -> None:
    logits = torch.randn(1, 16)
    logits[0, EOS] = 50.0
    params = SamplingParams(temperature=0.0, min_tokens=4, ignore_eos=True)
    assert _sample(params, 0, logits) == EOS
