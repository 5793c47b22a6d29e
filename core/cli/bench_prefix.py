"""`tenon bench prefix`: BENCHMARKS.md prefix-8k (`tenon.bench.prefix_cache`)."""

from __future__ import annotations

import argparse

from tenon.cli.bench_latency import engine_kwargs, write_json
from tenon.engine_args import EngineArgs


def add_prefix_parser(benches: argparse._SubParsersAction) -> None:
    prefix = benches.add_parser(
        "prefix", help="BENCHMARKS.md prefix-8k: TTFT after a shared document on the device, "
        "in the CPU tier (--kv-offloading-size), and recomputed")
    prefix.add_argument("--prefix-len", type=int, default=8000, help="tokens of the shared document")
    prefix.add_argument("--question-len", type=int, default=32, help="tokens of each question")
    prefix.add_argument("--num-questions", type=int, default=64, help="questions per state")
    prefix.add_argument("--output-len", type=int, default=2,
                        help="output tokens per question (TTFT is taken at the first)")
    prefix.add_argument("--workload", default="prefix-8k", help="workload id for the JSON")
    prefix.add_argument("--output-json", default=None, help="write the result record here")
    EngineArgs.add_cli_args(prefix)
    prefix.set_defaults(run=run_prefix_command)


def run_prefix_command(args: argparse.Namespace) -> int:
    import torch

    from tenon.bench.device_memory import free_device_memory
    from tenon.bench.host_copy import measure_pinned_host_to_device
    from tenon.bench.prefix_cache import PrefixBench, PrefixSettings
    from tenon.bench.prefix_cache_report import cpu_tier_load, prefix_record, summary_lines
    from tenon.frontend.llm import LLM

    settings = PrefixSettings(prefix_len=args.prefix_len, question_len=args.question_len,
                              num_questions=args.num_questions, output_len=args.output_len,
                              seed=args.seed)
    llm = LLM(**engine_kwargs(args))
    try:
        result = PrefixBench(llm, settings).run()
        model, dtype = llm.config.model.served_model_name, llm.config.model.dtype
        device = llm.engine.client.core.executor.runner.device
    finally:
        llm.shutdown()
    del llm
    free_device_memory()
    host_copy = None
    if device.type == "cuda":  # after the engine let go of its memory; same process
        load_bytes = cpu_tier_load(result)["loaded_bytes_per_question"]
        block_bytes = load_bytes // (result.prefix_hit_tokens // result.block_size)
        host_copy = measure_pinned_host_to_device(load_bytes, block_bytes, torch.device(device))
    record = prefix_record(result, host_copy, model=model, workload=args.workload,
                           extra={"dtype": dtype, "load_format": args.load_format,
                                  "kv_offloading_size_gib": args.kv_offloading_size})
    for line in summary_lines(record):
        print(line)
    write_json(args.output_json, record)
    return 0
