"""`tenon bench latency` (flags as `vllm bench latency`) and `tenon bench startup`."""

from __future__ import annotations

import argparse
import json
from typing import Any

import attrs

from tenon.engine_args import EngineArgs


def add_latency_parsers(benches: argparse._SubParsersAction) -> None:
    latency = benches.add_parser("latency", help="end-to-end latency of one batch, TTFT and TPOT")
    latency.add_argument("--input-len", type=int, default=128, help="prompt tokens per request")
    latency.add_argument("--output-len", type=int, default=256, help="output tokens per request (ignore_eos)")
    latency.add_argument("--batch-size", type=int, default=1, help="requests per batch")
    latency.add_argument("--num-iters-warmup", type=int, default=3, help="untimed batches first")
    latency.add_argument("--num-iters", type=int, default=10, help="timed batches")
    latency.add_argument("--workload", default=None,
                         help="workload id for the JSON (default: decode-1 at batch 1, else latency)")
    latency.add_argument("--output-json", default=None, help="write the result record here")
    EngineArgs.add_cli_args(latency)
    latency.set_defaults(run=run_latency_command)

    startup = benches.add_parser("startup", help="engine start-up time by phase, cold then warm")
    startup.add_argument("--num-starts", type=int, default=2, help="starts in this process; the first is cold")
    startup.add_argument("--output-json", default=None, help="write the result record here")
    EngineArgs.add_cli_args(startup)
    startup.set_defaults(run=run_startup_command)


def engine_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return attrs.asdict(EngineArgs.from_cli_args(args), recurse=False)


def latency_settings(args: argparse.Namespace) -> Any:
    from tenon.bench.latency import LatencySettings

    return LatencySettings(input_len=args.input_len, output_len=args.output_len, batch_size=args.batch_size,
                           num_iters_warmup=args.num_iters_warmup, num_iters=args.num_iters, seed=args.seed)


def write_json(path: str | None, payload: Any) -> None:
    if path:
        with open(path, "w") as handle:
            json.dump(payload, handle, indent=2)


def run_latency_command(args: argparse.Namespace) -> int:
    from tenon.bench.device_memory import free_device_memory
    from tenon.bench.latency import latency_record, run_latency
    from tenon.bench.startup_timing import start_timed

    settings = latency_settings(args)
    llm, startup = start_timed(engine_kwargs(args))
    model, dtype = llm.config.model.served_model_name, llm.config.model.dtype
    result = run_latency(llm, settings)
    llm.shutdown()
    del llm
    free_device_memory()
    workload = args.workload or ("decode-1" if settings.batch_size == 1 else "latency")
    record = latency_record(result, model=model, workload=workload, extra={
        "dtype": dtype, "enforce_eager": args.enforce_eager, "startup": startup.as_dict(),
    })
    for line in latency_lines(record["latency"]):
        print(line)
    print(f"start-up: {startup.wall_s:.2f} s to ready ({startup.weights_s:.2f} s building weights)")
    write_json(args.output_json, record)
    return 0


def latency_lines(latency: dict[str, Any]) -> list[str]:
    tpot = latency["tpot_ms"]
    decode = latency["decode_tokens_per_s"]
    return [
        f"batch {latency['batch_size']}, {latency['input_len']} in / {latency['output_len']} out, "
        f"{latency['num_iters']} iterations",
        f"latency ms: avg {latency['mean_latency_ms']:.1f}, p50 {latency['median_latency_ms']:.1f}, "
        f"p90 {latency['p90_latency_ms']:.1f}, p99 {latency['p99_latency_ms']:.1f}",
        f"TTFT ms (batch with 1 output token): avg {latency['mean_ttft_ms']:.1f}, "
        f"p50 {latency['median_ttft_ms']:.1f}; TPOT ms: {'-' if tpot is None else f'{tpot:.2f}'}",
        f"output tok/s: {latency['output_tokens_per_s']:.1f} in all, "
        f"{latency['stream_output_tokens_per_s']:.1f} per request, "
        f"decode alone {'-' if decode is None else f'{decode:.1f}'} per request",
    ]


def run_startup_command(args: argparse.Namespace) -> int:
    from tenon.bench.record_comparisons import no_baseline
    from tenon.bench.report import result_record
    from tenon.bench.startup_timing import time_startups

    engine_args = engine_kwargs(args)
    timings = time_startups(engine_args, args.num_starts)
    for index, timing in enumerate(timings):
        phases = ", ".join(f"{name} {seconds:.2f}" for name, seconds in timing.phases_s.items())
        print(f"start {index + 1} ({'cold' if index == 0 else 'warm'}): {timing.wall_s:.2f} s to ready; "
              f"weights {timing.weights_s:.2f} s, other phases {timing.other_phases_s:.2f} s, "
              f"outside phases {timing.outside_phases_s:.2f} s [{phases}]")
        if timing.process_to_ready_s is not None:
            print(f"  from process creation (interpreter and imports included): "
                  f"{timing.process_to_ready_s:.2f} s to ready")
    from tenon.default_model import DEFAULT_MODEL_NAME

    record = result_record(
        workload="startup", model=args.served_model_name or args.model or DEFAULT_MODEL_NAME, value=timings[0].wall_s, unit="s to ready (cold)",
        baseline=no_baseline(), limit=None,
        extra={"cold_s": timings[0].wall_s,
               "warm_s": min(t.wall_s for t in timings[1:]) if len(timings) > 1 else None,
               "load_format": args.load_format, "enforce_eager": args.enforce_eager,
               "starts": [timing.as_dict() for timing in timings]},
    )
    write_json(args.output_json, record)
    return 0
