"""Where a decode-1 step's time goes on the GPU: start-up profile, the captured forward alone,
logits and sampling, the whole engine step, the kernels of one step, and the host-side Python.

    python3 benchmarks/diagnostics/decode_breakdown.py [--model DIR] [--steps 128]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import time

import torch

from tenon import LLM, SamplingParams


def _stats_text(profile: cProfile.Profile, limit: int) -> str:
    stream = io.StringIO()
    pstats.Stats(profile, stream=stream).sort_stats("cumulative").print_stats(limit)
    return "\n".join(line for line in stream.getvalue().splitlines() if line.strip())[-6000:]


def _time_cuda(function, repeats: int) -> float:  # median milliseconds
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    for _ in range(repeats):
        start.record()
        function()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="benchmarks/configs/llama-3.1-8b")
    parser.add_argument("--steps", type=int, default=128)
    args = parser.parse_args()

    profile = cProfile.Profile()
    profile.enable()
    llm = LLM(args.model, load_format="dummy", dtype="bfloat16", max_model_len=4096, log_startup=True)
    profile.disable()
    print("== start-up, cumulative (top 40)\n" + _stats_text(profile, 40))

    prompt = {"prompt_token_ids": list(range(1000, 1128))}
    params = SamplingParams(temperature=0.0, max_tokens=args.steps, ignore_eos=True)
    llm.generate([prompt], params)
    runner = llm.engine.client.core.executor.runner
    graphs = runner.graphs
    assert graphs is not None, "no decode graphs"

    replay_ms = _time_cuda(lambda: graphs.replay(None, 1), 200)
    hidden = graphs._outputs[1][:1]
    logits_ms = _time_cuda(lambda: runner.model.compute_logits(hidden), 200)
    argmax_ms = _time_cuda(lambda: runner.model.compute_logits(hidden).argmax(-1), 200)

    torch.cuda.synchronize()
    start = time.perf_counter()
    llm.generate([{"prompt_token_ids": list(range(2000, 2128))}], params)
    total_s = time.perf_counter() - start
    step_ms = total_s / args.steps * 1e3
    print(f"== decode step: {step_ms:.3f} ms whole request / steps (prefill included)")
    print(f"   graph replay (forward only) {replay_ms:.3f} ms; logits {logits_ms:.3f} ms; "
          f"logits+argmax {argmax_ms:.3f} ms")

    profile = cProfile.Profile()
    profile.enable()
    llm.generate([{"prompt_token_ids": list(range(3000, 3128))}], params)
    profile.disable()
    print("== host Python during one request, cumulative (top 45)\n" + _stats_text(profile, 45))

    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as trace:
        llm.generate([{"prompt_token_ids": list(range(4000, 4128))}],
                     SamplingParams(temperature=0.0, max_tokens=16, ignore_eos=True))
    print("== kernels over 16 steps (top 30 by device time)")
    print(trace.key_averages().table(sort_by="cuda_time_total", row_limit=30, max_name_column_width=70))
    llm.shutdown()


if __name__ == "__main__":
    main()
