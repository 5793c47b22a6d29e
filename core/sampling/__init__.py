"""Sampling: per-request parameters, the per-step batch metadata, and the sampler."""

from tenon.sampling.argmax import vocab_argmax
from tenon.sampling.filters import apply_min_p, apply_temperature, apply_top_k, apply_top_k_top_p
from tenon.sampling.logprobs import compute_prompt_logprobs, gather_logprobs
from tenon.sampling.metadata import SamplingMetadata, SamplingRow, build_sampling_metadata
from tenon.sampling.params import GREEDY_TEMPERATURE_EPS, SamplingParams, validate_logprobs
from tenon.sampling.penalties import apply_penalties, count_token_ids
from tenon.sampling.sampler import Sampler, SamplerOutput, random_sample
from tenon.sampling.seeding import make_step_generator, mix_seed

__all__ = [
    "GREEDY_TEMPERATURE_EPS",
    "Sampler",
    "SamplerOutput",
    "SamplingMetadata",
    "SamplingParams",
    "SamplingRow",
    "apply_min_p",
    "apply_penalties",
    "apply_temperature",
    "apply_top_k",
    "apply_top_k_top_p",
    "build_sampling_metadata",
    "compute_prompt_logprobs",
    "count_token_ids",
    "gather_logprobs",
    "make_step_generator",
    "mix_seed",
    "random_sample",
    "validate_logprobs",
    "vocab_argmax",
]
