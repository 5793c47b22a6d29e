"""`tenon bench attention`: decode attention alone, per layer, against the card's copy bandwidth."""

from __future__ import annotations

import argparse

from tenon.cli.bench_latency import write_json


def add_attention_parser(benches: argparse._SubParsersAction) -> None:
    attention = benches.add_parser(
        "attention", help="decode attention per layer over rotating KV buffers larger than L2 (decode-attention)")
    attention.add_argument("--attention-backend", default=None,
                           help="backend name as the engine takes it, or module:Class "
                                "(default: triton on CUDA, reference on the CPU)")
    attention.add_argument("--baseline-backend", default=None,
                           help="another backend timed on the same buffers, for the record's ratio")
    attention.add_argument("--context-lens", type=int, nargs="+", default=[4096, 32768],
                           help="tokens in each request's sequence, this step's included")
    attention.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64], help="requests per step")
    attention.add_argument("--num-heads", type=int, default=32)
    attention.add_argument("--num-kv-heads", type=int, default=8)
    attention.add_argument("--head-size", type=int, default=128)
    attention.add_argument("--block-size", type=int, default=16)
    attention.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16")
    attention.add_argument("--max-model-len", type=int, default=None,
                           help="the backends' model length (sets split counts); default: the longest context")
    attention.add_argument("--min-total-bytes", type=int, default=None,
                           help="the rotating buffers together reach this (default: 1 GiB)")
    attention.add_argument("--max-total-bytes", type=int, default=None,
                           help="cap on the buffers (default: half the free device memory; none on the CPU)")
    attention.add_argument("--min-num-buffers", type=int, default=2)
    attention.add_argument("--num-warmup", type=int, default=3, help="untimed cycles")
    attention.add_argument("--num-repeats", type=int, default=20, help="timed cycles")
    attention.add_argument("--cuda-graph", action=argparse.BooleanOptionalAction, default=None,
                           help="replay each cycle in a CUDA graph (default: when the backend supports it)")
    attention.add_argument("--copy-size-bytes", type=int, default=None,
                           help="bytes copied to measure bandwidth (default: 2 GiB)")
    attention.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when available)")
    attention.add_argument("--seed", type=int, default=0)
    attention.add_argument("--output-json", default=None, help="write the records (a JSON list) here")
    attention.set_defaults(run=run_attention_command)


def run_attention_command(args: argparse.Namespace) -> int:
    import torch

    from tenon.bench.attention_choice import choose_attention_backend
    from tenon.bench.attention_micro import AttentionShape
    from tenon.bench.attention_micro_run import (
        MicroSettings,
        micro_records,
        micro_summary_lines,
        run_attention_micro,
    )

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    shape = AttentionShape(num_heads=args.num_heads, num_kv_heads=args.num_kv_heads, head_size=args.head_size,
                           block_size=args.block_size, dtype=args.dtype)
    sizes = {"min_total_bytes": args.min_total_bytes, "copy_size_bytes": args.copy_size_bytes}
    settings = MicroSettings(
        context_lens=tuple(args.context_lens), batch_sizes=tuple(args.batch_sizes),
        max_total_bytes=args.max_total_bytes, min_num_buffers=args.min_num_buffers, num_warmup=args.num_warmup,
        num_repeats=args.num_repeats, max_model_len=args.max_model_len, use_graph=args.cuda_graph, seed=args.seed,
        **{name: value for name, value in sizes.items() if value is not None},
    )
    requirements = {"device_type": device.type, "dtype": shape.dtype, "head_size": shape.head_size,
                    "block_size": shape.block_size}
    name = args.attention_backend or ("triton" if device.type == "cuda" else "reference")
    choice = choose_attention_backend(name, **requirements)
    baseline = (choose_attention_backend(args.baseline_backend, **requirements)
                if args.baseline_backend else None)
    records = micro_records(run_attention_micro(choice, shape, settings, device, baseline=baseline))
    write_json(args.output_json, records)
    for line in micro_summary_lines(records):
        print(line)
    return 0
