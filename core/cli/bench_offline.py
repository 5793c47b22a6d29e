"""`tenon bench offline`: offline-1k and offline-128 against their limit, optionally HF generate()."""

from __future__ import annotations

import argparse

from tenon.cli.bench_latency import engine_kwargs, write_json
from tenon.engine_args import EngineArgs


def add_offline_parser(benches: argparse._SubParsersAction) -> None:
    offline = benches.add_parser(
        "offline", help="BENCHMARKS.md offline-1k / offline-128: ours vs the simulated limit (and HF generate())")
    offline.add_argument("--workload", dest="workloads", action="append", default=None,
                         choices=("offline-1k", "offline-128"),
                         help="repeatable; default: both, in one engine")
    offline.add_argument("--num-prompts", type=int, nargs="+", default=None,
                         help="prompts instead of BENCHMARKS.md's (the record says so): one count for "
                              "every workload, or one per workload in order")
    offline.add_argument("--hf-baseline", action=argparse.BooleanOptionalAction, default=False,
                         help="also run ours and HF generate() on --hf-shape, HF after our engine is shut down")
    offline.add_argument("--hf-shape", default="64x512x256", metavar="BATCHxINxOUT")
    offline.add_argument("--hf-num-iters", type=int, default=2, help="timed HF generate() calls")
    offline.add_argument("--copy-size-bytes", type=int, default=None,
                         help="bytes copied to measure bandwidth (default: 2 GiB)")
    offline.add_argument("--matmul-size", type=int, default=None,
                         help="n of the n x n bf16 matmul timed for the matmul rate (default: 8192)")
    offline.add_argument("--matmul-sustain-s", type=float, default=None, metavar="SECONDS",
                         help="seconds of back-to-back matmuls for the sustained matmul rate and the "
                              "second limit computed with it (default: 2; 0 skips it)")
    offline.add_argument("--output-json", default=None, help="write the records (a JSON list) here")
    EngineArgs.add_cli_args(offline)
    offline.set_defaults(run=run_offline_command)


def run_offline_command(args: argparse.Namespace) -> int:
    import attrs

    from tenon.bench.hf_baseline import GenerateShape
    from tenon.bench.offline import OFFLINE_SHAPES, OfflineOptions, run_offline
    from tenon.bench.offline_report import offline_records, offline_summary_lines

    shapes = tuple(OFFLINE_SHAPES[name] for name in (args.workloads or ("offline-1k", "offline-128")))
    if args.num_prompts is not None:
        counts = args.num_prompts * len(shapes) if len(args.num_prompts) == 1 else args.num_prompts
        if len(counts) != len(shapes) or min(counts) < 1:
            raise ValueError(f"--num-prompts takes one count, or one per workload ({len(shapes)}), each at "
                             f"least 1; got {args.num_prompts}")
        shapes = tuple(attrs.evolve(shape, num_prompts=count) for shape, count in zip(shapes, counts, strict=True))
    if args.matmul_sustain_s is not None and args.matmul_sustain_s < 0:
        raise ValueError(f"--matmul-sustain-s takes seconds, at least 0 (0 skips the sustained matmul "
                         f"rate); got {args.matmul_sustain_s}")
    sizes = {"copy_size_bytes": args.copy_size_bytes, "matmul_size": args.matmul_size,
             "matmul_sustain_s": args.matmul_sustain_s}
    overrides = {name: value for name, value in sizes.items() if value is not None}
    if overrides.get("matmul_sustain_s") == 0:
        overrides["matmul_sustain_s"] = None  # 0 skips the sustained rate; no flag keeps the default
    options = OfflineOptions(
        shapes=shapes, hf_shape=GenerateShape.parse(args.hf_shape) if args.hf_baseline else None,
        hf_num_iters=args.hf_num_iters, seed=args.seed,
        **overrides,
    )
    records = offline_records(run_offline(engine_kwargs(args), options))
    write_json(args.output_json, records)
    for line in offline_summary_lines(records):
        print(line)
    return 0
