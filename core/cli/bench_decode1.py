"""`tenon bench decode1-report` (ours vs HF vs the card's limit, one process) and `tenon bench hf-baseline`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tenon.cli.bench_latency import engine_kwargs, latency_settings, write_json
from tenon.engine_args import EngineArgs

HF_DTYPES = ("bfloat16", "float16", "float32")


def add_decode1_parsers(benches: argparse._SubParsersAction) -> None:
    decode1 = benches.add_parser(
        "decode1-report", help="BENCHMARKS.md decode-1: copy bandwidth, ours (graphs and eager), HF generate()")
    decode1.add_argument("--input-len", type=int, default=128)
    decode1.add_argument("--output-len", type=int, default=256)
    decode1.add_argument("--batch-size", type=int, default=1)
    decode1.add_argument("--num-iters-warmup", type=int, default=3)
    decode1.add_argument("--num-iters", type=int, default=10)
    decode1.add_argument("--eager-comparison", action=argparse.BooleanOptionalAction, default=True,
                         help="also run ours with --enforce-eager")
    decode1.add_argument("--hf-shape", action="append", default=[], metavar="BATCHxINxOUT",
                         help="another HF generate() shape beside ours, e.g. 64x512x256 (repeatable)")
    decode1.add_argument("--hf-num-iters", type=int, default=2, help="timed HF generate() calls per shape")
    decode1.add_argument("--copy-size-bytes", type=int, default=None,
                         help="bytes copied to measure bandwidth (default: 2 GiB)")
    decode1.add_argument("--matmul-size", type=int, default=None,
                         help="n of the n x n bf16 matmul timed for the matmul rate (default: 8192)")
    decode1.add_argument("--workload", default="decode-1", help="workload id for our records")
    decode1.add_argument("--output-json", default=None, help="write the records (a JSON list) here")
    EngineArgs.add_cli_args(decode1)
    decode1.set_defaults(run=run_decode1_command)

    hf = benches.add_parser("hf-baseline", help="HF transformers generate() on a model's config, random init")
    hf.add_argument("--model", required=True, help="a directory with config.json")
    hf.add_argument("--dtype", choices=HF_DTYPES, default="bfloat16")
    hf.add_argument("--shape", action="append", default=None, metavar="BATCHxINxOUT",
                    help="batch x input x output (repeatable; default: 1x128x256 and 64x512x256)")
    hf.add_argument("--num-iters", type=int, default=2, help="timed generate() calls per shape")
    hf.add_argument("--output-json", default=None, help="write the records (a JSON list) here")
    hf.set_defaults(run=run_hf_baseline_command)


def run_decode1_command(args: argparse.Namespace) -> int:
    from tenon.bench.decode1 import Decode1Options, decode1_records, run_decode1, summary_lines
    from tenon.bench.hf_baseline import GenerateShape

    modes = (True,) if args.enforce_eager else ((False, True) if args.eager_comparison else (False,))
    sizes = {"copy_size_bytes": args.copy_size_bytes, "matmul_size": args.matmul_size}
    options = Decode1Options(
        settings=latency_settings(args), eager_modes=modes,
        extra_hf_shapes=tuple(GenerateShape.parse(text) for text in args.hf_shape),
        hf_num_iters=args.hf_num_iters, workload=args.workload,
        **{name: value for name, value in sizes.items() if value is not None},
    )
    records = decode1_records(run_decode1(engine_kwargs(args), options), options)
    write_json(args.output_json, records)
    for line in summary_lines(records):
        print(line)
    return 0


def run_hf_baseline_command(args: argparse.Namespace) -> int:
    import torch

    from tenon.bench.hf_baseline import HF_BASELINE_SHAPES, GenerateShape, hf_generate_rates
    from tenon.bench.record_comparisons import no_baseline
    from tenon.bench.report import result_record
    from tenon.plugins.loaders.safetensors_loader import load_hf_config

    shapes = tuple(GenerateShape.parse(text) for text in args.shape) if args.shape else HF_BASELINE_SHAPES
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = load_hf_config(Path(args.model))
    rates = hf_generate_rates(config, shapes, dtype=getattr(torch, args.dtype), device=device,
                              num_iters=args.num_iters)
    records: list[dict[str, Any]] = []
    for rate in rates:
        print(f"HF generate() {args.dtype} {rate.shape}: {rate.output_tokens_per_s:.1f} output tok/s")
        records.append(result_record(
            workload="hf-baseline", model=args.model, value=rate.output_tokens_per_s, unit="output tokens/s",
            baseline=no_baseline(), limit=None,
            extra={"name": f"hf-transformers-generate {args.dtype} {rate.shape}", "dtype": args.dtype,
                   "batch_size": rate.shape.batch_size, "input_len": rate.shape.input_len,
                   "output_len": rate.shape.output_len, "samples_s": list(rate.samples_s)},
        ))
    write_json(args.output_json, records)
    return 0
