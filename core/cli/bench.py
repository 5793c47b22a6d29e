"""`tenon bench throughput`: offline throughput on random prompts, vLLM's flags."""

from __future__ import annotations

import argparse
import json
import platform as host_platform
import random
import time
from datetime import date

import attrs

from tenon.cli.bench_attention import add_attention_parser
from tenon.cli.bench_decode1 import add_decode1_parsers
from tenon.cli.bench_latency import add_latency_parsers
from tenon.cli.bench_offline import add_offline_parser
from tenon.cli.bench_prefix import add_prefix_parser
from tenon.cli.bench_serve import add_serve_parser
from tenon.engine_args import EngineArgs


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks")
    benches = parser.add_subparsers(dest="bench", required=True)
    throughput = benches.add_parser("throughput", help="offline throughput on random prompts")
    throughput.add_argument("--input-len", type=int, default=128)
    throughput.add_argument("--output-len", type=int, default=128)
    throughput.add_argument("--num-prompts", type=int, default=64)
    throughput.add_argument("--output-json", default=None, help="write the result here")
    throughput.add_argument("--workload", default="throughput", help="workload id for the JSON")
    EngineArgs.add_cli_args(throughput)
    throughput.set_defaults(run=run_throughput)
    cpu_default = benches.add_parser(
        "cpu-default", help="BENCHMARKS.md cpu-default: ours vs HF generate() and llama.cpp")
    cpu_default.add_argument("--output-json", default=None, help="write the results here")
    EngineArgs.add_cli_args(cpu_default, with_model=False)
    cpu_default.set_defaults(run=run_cpu_default)
    add_serve_parser(benches)
    add_latency_parsers(benches)
    add_decode1_parsers(benches)
    add_attention_parser(benches)
    add_offline_parser(benches)
    add_prefix_parser(benches)


def run_cpu_default(args: argparse.Namespace) -> int:
    from tenon.bench.cpu_default import run_cpu_default as run

    engine_args = {key: value for key, value in attrs.asdict(EngineArgs.from_cli_args(args), recurse=False).items()
                   if key != "model"}
    records = run(engine_args)
    for record in records:
        print(f"concurrency {record['concurrency']:>2}: tenon {record['value']:.1f} tok/s, "
              f"HF {record['baseline']['value']:.1f} ({record['baseline']['ratio']:.2f}x), "
              f"llama.cpp {record['llama_cpp']['value'] if record['llama_cpp'] else 'n/a'}")
    if args.output_json:
        with open(args.output_json, "w") as handle:
            json.dump(records, handle, indent=2)
    return 0


def run_throughput(args: argparse.Namespace) -> int:
    import torch

    from tenon.frontend.llm import LLM
    from tenon.sampling.params import SamplingParams

    llm = LLM(**attrs.asdict(EngineArgs.from_cli_args(args), recurse=False))
    vocab_size = int(llm.engine.hf_config.vocab_size)
    rng = random.Random(0)
    prompts = [
        {"prompt_token_ids": [rng.randrange(vocab_size) for _ in range(args.input_len)]}
        for _ in range(args.num_prompts)
    ]
    params = SamplingParams(max_tokens=args.output_len, ignore_eos=True, temperature=0.0)
    llm.generate(prompts[:1], SamplingParams(max_tokens=4, ignore_eos=True))  # warm-up
    start = time.perf_counter()
    cpu_start_s = time.process_time()
    outputs = llm.generate(prompts, params, use_tqdm=True)
    elapsed_s = time.perf_counter() - start
    # CPU time of every thread of this process: on a shared machine, wall time alone says more
    # about the neighbours than about the engine.
    cpu_s = time.process_time() - cpu_start_s
    num_output = sum(len(o.outputs[0].token_ids) for o in outputs)
    num_total = num_output + args.num_prompts * args.input_len
    result = {
        "workload": args.workload,
        "model": llm.config.model.served_model_name,
        "card": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "versions": {"tenon": "0.1.0", "torch": torch.__version__, "python": host_platform.python_version()},
        "input_len": args.input_len,
        "output_len": args.output_len,
        "num_prompts": args.num_prompts,
        "elapsed_s": elapsed_s,
        "cpu_s": cpu_s,
        "requests_per_s": args.num_prompts / elapsed_s,
        "output_tokens_per_s": num_output / elapsed_s,
        "total_tokens_per_s": num_total / elapsed_s,
        "value": num_output / elapsed_s,
        "unit": "output tokens/s",
        "date": date.today().isoformat(),
    }
    print(f"{args.num_prompts} requests in {elapsed_s:.2f} s: {result['requests_per_s']:.2f} req/s, "
          f"{result['output_tokens_per_s']:.1f} output tok/s, {result['total_tokens_per_s']:.1f} total tok/s")
    if args.output_json:
        with open(args.output_json, "w") as handle:
            json.dump(result, handle, indent=2)
    llm.shutdown()
    return 0
