"""`tenon bench attention` (decode attention per layer against the card's copy bandwidth) and
`tenon bench prefill-attention` (prefill attention per layer against its matmul rate)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from tenon.cli.bench_latency import write_json


def add_attention_parser(benches: argparse._SubParsersAction) -> None:
    attention = benches.add_parser(
        "attention", help="decode attention per layer over rotating KV buffers larger than L2 (decode-attention)")
    attention.add_argument("--context-lens", type=int, nargs="+", default=[4096, 32768],
                           help="tokens in each request's sequence, this step's included")
    attention.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64], help="requests per step")
    attention.add_argument("--max-model-len", type=int, default=None,
                           help="the backends' model length (sets split counts); default: the longest context")
    attention.add_argument("--copy-size-bytes", type=int, default=None,
                           help="bytes copied to measure bandwidth (default: 2 GiB)")
    _add_layer_arguments(attention, num_warmup=3, num_repeats=20)
    attention.set_defaults(run=run_attention_command)

    prefill = benches.add_parser(
        "prefill-attention", help="prefill attention per layer over rotating KV buffers, against the matmul rate "
                                  "(prefill-attention)")
    prefill.add_argument("--prompt-lens", type=int, nargs="+", default=[512, 1024, 4096],
                         help="new tokens of each prompt this step")
    prefill.add_argument("--num-prompts", type=int, nargs="+", default=[8], help="prompts per step")
    prefill.add_argument("--cached-len", type=int, default=0,
                         help="tokens of each prompt already in the cache (a chunk after a prefix)")
    prefill.add_argument("--matmul-size", type=int, default=None,
                         help="n of the n x n matmul timed for the limit (default: 8192)")
    _add_layer_arguments(prefill, num_warmup=2, num_repeats=10)
    prefill.set_defaults(run=run_prefill_attention_command)


def _add_layer_arguments(parser: argparse.ArgumentParser, *, num_warmup: int, num_repeats: int) -> None:
    """The layer shape, the backends, the buffers and the timing both benchmarks take."""
    parser.add_argument("--attention-backend", default=None,
                        help="backend name as the engine takes it, or module:Class "
                             "(default: triton on CUDA, reference on the CPU)")
    parser.add_argument("--baseline-backend", default=None,
                        help="another backend timed on the same buffers, for the record's ratio")
    parser.add_argument("--num-heads", type=int, default=32)
    parser.add_argument("--num-kv-heads", type=int, default=8)
    parser.add_argument("--head-size", type=int, default=128)
    parser.add_argument("--block-size", type=int, default=16)
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16")
    parser.add_argument("--min-total-bytes", type=int, default=None,
                        help="the rotating buffers together reach this (default: 1 GiB)")
    parser.add_argument("--max-total-bytes", type=int, default=None,
                        help="cap on the buffers (default: half the free device memory; none on the CPU)")
    parser.add_argument("--min-num-buffers", type=int, default=2)
    parser.add_argument("--num-warmup", type=int, default=num_warmup, help="untimed cycles")
    parser.add_argument("--num-repeats", type=int, default=num_repeats, help="timed cycles")
    parser.add_argument("--cuda-graph", action=argparse.BooleanOptionalAction, default=None,
                        help="replay each cycle in a CUDA graph (default: when the backend supports it)")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when available)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-json", default=None, help="write the records (a JSON list) here")


def _layer_setup(args: argparse.Namespace) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
    """(device, shape, our backend, the baseline or None, the shared settings) from the flags."""
    import torch

    from tenon.bench.attention_choice import choose_attention_backend
    from tenon.bench.attention_micro import AttentionShape

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    shape = AttentionShape(num_heads=args.num_heads, num_kv_heads=args.num_kv_heads, head_size=args.head_size,
                           block_size=args.block_size, dtype=args.dtype)
    requirements = {"device_type": device.type, "dtype": shape.dtype, "head_size": shape.head_size,
                    "block_size": shape.block_size}
    name = args.attention_backend or ("triton" if device.type == "cuda" else "reference")
    choice = choose_attention_backend(name, **requirements)
    baseline = (choose_attention_backend(args.baseline_backend, **requirements)
                if args.baseline_backend else None)
    settings = {
        "max_total_bytes": args.max_total_bytes, "min_num_buffers": args.min_num_buffers,
        "num_warmup": args.num_warmup, "num_repeats": args.num_repeats, "use_graph": args.cuda_graph,
        "seed": args.seed,
    }
    if args.min_total_bytes is not None:
        settings["min_total_bytes"] = args.min_total_bytes
    return device, shape, choice, baseline, settings


def run_attention_command(args: argparse.Namespace) -> int:
    from tenon.bench.attention_micro_run import (
        MicroSettings,
        micro_records,
        micro_summary_lines,
        run_attention_micro,
    )

    device, shape, choice, baseline, shared = _layer_setup(args)
    extra = {"copy_size_bytes": args.copy_size_bytes} if args.copy_size_bytes is not None else {}
    settings = MicroSettings(context_lens=tuple(args.context_lens), batch_sizes=tuple(args.batch_sizes),
                             max_model_len=args.max_model_len, **shared, **extra)
    return _report(args, micro_records(run_attention_micro(choice, shape, settings, device, baseline=baseline)),
                   micro_summary_lines)


def run_prefill_attention_command(args: argparse.Namespace) -> int:
    from tenon.bench.prefill_micro import (
        PrefillSettings,
        prefill_records,
        prefill_summary_lines,
        run_prefill_micro,
    )

    device, shape, choice, baseline, shared = _layer_setup(args)
    extra = {"matmul_size": args.matmul_size} if args.matmul_size is not None else {}
    settings = PrefillSettings(prompt_lens=tuple(args.prompt_lens), num_prompts=tuple(args.num_prompts),
                               cached_len=args.cached_len, **shared, **extra)
    return _report(args, prefill_records(run_prefill_micro(choice, shape, settings, device, baseline=baseline)),
                   prefill_summary_lines)


def _report(args: argparse.Namespace, records: list[dict[str, Any]],
            summary_lines: Callable[[list[dict[str, Any]]], list[str]]) -> int:
    """Write the records to --output-json and print their summary table."""
    write_json(args.output_json, records)
    for line in summary_lines(records):
        print(line)
    return 0
