"""`tenon bench serve`: load an OpenAI-compatible server (ours, vLLM, SGLang) with random prompts.

Flags follow `vllm bench serve` with its random dataset. The tokenizer builds the prompts and
counts output tokens when the server sends no usage; it should be the served model's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_ENDPOINT = "/v1/completions"


def add_serve_parser(benches: argparse._SubParsersAction) -> None:
    serve = benches.add_parser(
        "serve", help="load an OpenAI-compatible server with random prompts (like vllm bench serve)")
    serve.add_argument("--base-url", default=DEFAULT_BASE_URL, help="the server, without /v1")
    serve.add_argument("--endpoint", default=DEFAULT_ENDPOINT, help="the streamed completions path")
    serve.add_argument("--model", default=None,
                       help="model id to send; default: the first id of GET /v1/models")
    serve.add_argument("--tokenizer", default=None,
                       help="a local tokenizer directory or .gguf file; default: the default model's")
    serve.add_argument("--num-prompts", type=int, default=1000)
    serve.add_argument("--random-input-len", type=int, default=1024, help="prompt tokens, exactly")
    serve.add_argument("--random-output-len", type=int, default=128, help="sent as max_tokens")
    serve.add_argument("--max-concurrency", type=int, default=None,
                       help="most requests in flight at once; default: no limit")
    serve.add_argument("--request-rate", type=float, default=float("inf"),
                       help="mean requests per second (Poisson arrivals); inf sends all at once")
    serve.add_argument("--burstiness", type=float, default=1.0,
                       help="gamma shape of the arrival gaps: 1 is Poisson, lower is burstier")
    serve.add_argument("--ignore-eos", action="store_true", help="send the ignore_eos extra field")
    serve.add_argument("--continuous-usage-stats", action="store_true",
                       help="ask for usage in every chunk, so multi-token chunks split their ITL")
    serve.add_argument("--seed", type=int, default=0, help="seeds the prompts and the arrivals")
    serve.add_argument("--num-warmups", type=int, default=0, help="untimed requests sent first")
    serve.add_argument("--disable-tqdm", action="store_true")
    serve.add_argument("--output-json", default=None, help="write the result record here")
    serve.add_argument("--workload", default="serve", help="workload id for the JSON (serve-32)")
    serve.add_argument("--card", default=None,
                       help="the server's card for the JSON; default: this machine's (or cpu)")
    serve.add_argument("--baseline-output-tokens-per-s", type=float, default=None,
                       help="offline throughput on the same shapes, to record the ratio")
    serve.set_defaults(run=run_serve)


def load_bench_tokenizer(path: str | None) -> Any:
    """A transformers tokenizer from a local directory or GGUF file; None means the default model."""
    import tenon.envs
    from tenon.plugins.loaders.gguf_loader import GGUFLoader
    from tenon.spec.loader import ModelSource

    if path is None:
        from tenon.default_model import default_model_path

        source_path = default_model_path()
    else:
        source_path = Path(path)
        has_tokenizer_files = source_path.is_dir() and any(
            (source_path / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json"))
        if has_tokenizer_files:
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(source_path)
        is_gguf = (source_path.is_file() and source_path.suffix == ".gguf") or (
            source_path.is_dir() and any(source_path.glob("*.gguf")))
        if not is_gguf:
            raise ValueError(
                f"--tokenizer {path!r} is neither a local tokenizer directory nor a .gguf file; "
                "pass the served model's directory (hub names are not fetched)"
            )
    tokenizer = GGUFLoader(cache_dir=tenon.envs.cache_dir()).load_tokenizer(ModelSource(path=source_path))
    if tokenizer is None:
        raise ValueError(f"{source_path} carries no tokenizer; pass --tokenizer DIR")
    return tokenizer


def bench_config(args: argparse.Namespace, model: str) -> dict[str, Any]:
    return {
        "base_url": args.base_url,
        "endpoint": args.endpoint,
        "model": model,
        "tokenizer": args.tokenizer,
        "num_prompts": args.num_prompts,
        "random_input_len": args.random_input_len,
        "random_output_len": args.random_output_len,
        "max_concurrency": args.max_concurrency,
        "request_rate": args.request_rate if args.request_rate != float("inf") else "inf",
        "burstiness": args.burstiness,
        "ignore_eos": args.ignore_eos,
        "continuous_usage_stats": args.continuous_usage_stats,
        "seed": args.seed,
        "num_warmups": args.num_warmups,
    }


async def _resolve_model(base_url: str) -> str:
    import aiohttp

    from tenon.bench.serve_client import fetch_model_ids

    async with aiohttp.ClientSession() as session:
        model_ids = await fetch_model_ids(session, base_url)
    if not model_ids:
        raise ValueError(f"GET {base_url}/v1/models listed no models; pass --model")
    return model_ids[0]


def run_serve(args: argparse.Namespace) -> int:
    from tenon.bench.report import result_record
    from tenon.bench.serve_client import CompletionRequest, RequestSettings
    from tenon.bench.serve_metrics import compute_metrics, format_metrics
    from tenon.bench.serve_workload import arrival_offsets_s, random_prompts, run_benchmark

    if args.random_output_len < 1:
        raise ValueError(f"--random-output-len must be at least 1, got {args.random_output_len}")
    # Validate the cheap flags before the tokenizer and the prompts take their seconds.
    offsets_s = arrival_offsets_s(args.num_prompts, args.request_rate, seed=args.seed,
                                  burstiness=args.burstiness)
    model = args.model or asyncio.run(_resolve_model(args.base_url))
    tokenizer = load_bench_tokenizer(args.tokenizer)
    prompts = random_prompts(tokenizer, num_prompts=args.num_prompts,
                             input_len_tokens=args.random_input_len, seed=args.seed)
    requests = [CompletionRequest(prompt=prompt.text, prompt_tokens=prompt.num_tokens,
                                  max_tokens=args.random_output_len) for prompt in prompts]
    settings = RequestSettings(
        api_url=args.base_url.rstrip("/") + args.endpoint, model=model, ignore_eos=args.ignore_eos,
        continuous_usage_stats=args.continuous_usage_stats)
    run = asyncio.run(run_benchmark(
        requests, settings, arrival_offsets_s=offsets_s, max_concurrency=args.max_concurrency,
        num_warmups=args.num_warmups, show_progress=not args.disable_tqdm))
    metrics = compute_metrics(
        run.results, run.duration_s,
        count_tokens=lambda text: len(tokenizer.encode(text, add_special_tokens=False)))
    print(format_metrics(metrics))
    if args.output_json:
        baseline_value = args.baseline_output_tokens_per_s
        baseline = {
            "name": "offline throughput, same shapes",
            "value": baseline_value,
            "ratio": metrics.output_tokens_per_s / baseline_value if baseline_value else None,
        }
        record = result_record(
            workload=args.workload, model=model, value=metrics.output_tokens_per_s,
            unit="output tokens/s", baseline=baseline, limit=None,
            extra={"config": bench_config(args, model), **metrics.as_dict()})
        if args.card is not None:
            record["card"] = args.card
        Path(args.output_json).write_text(json.dumps(record, indent=2))
    return 0 if metrics.num_failed == 0 else 1
