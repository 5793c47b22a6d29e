"""Sampling flags shared by the CLI commands that generate text."""

from __future__ import annotations

import argparse

from tenon.sampling.params import SamplingParams


def add_sampling_flags(parser: argparse.ArgumentParser, *, max_tokens: int = 256) -> None:
    parser.add_argument("--max-tokens", type=int, default=max_tokens, help="new tokens at most")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--min-p", type=float, default=0.0)
    parser.add_argument("--sampling-seed", type=int, default=None, help="seed for this request")


def sampling_params_from(args: argparse.Namespace) -> SamplingParams:
    return SamplingParams(
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        min_p=args.min_p,
        seed=args.sampling_seed,
    )
