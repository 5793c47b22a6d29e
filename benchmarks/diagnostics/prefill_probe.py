"""Why does a 128-token prefill take longer with decode graphs captured than without?
Times `generate(max_tokens=1)` (one prefill step) in both modes, and profiles one call.

    python3 benchmarks/diagnostics/prefill_probe.py
"""

from __future__ import annotations

import gc
import statistics
import time

import torch

from tenon import LLM, SamplingParams


def probe(enforce_eager: bool) -> None:
    llm = LLM("benchmarks/configs/llama-3.1-8b", load_format="dummy", dtype="bfloat16",
              max_model_len=4096, log_startup=False, enforce_eager=enforce_eager,
              enable_prefix_caching=False)
    params = SamplingParams(temperature=0.0, max_tokens=1, ignore_eos=True)
    samples = []
    for index in range(8):
        prompt = {"prompt_token_ids": [(index * 131 + j) % 120000 + 10 for j in range(128)]}
        torch.cuda.synchronize()
        start = time.perf_counter()
        llm.generate([prompt], params, use_tqdm=False)
        samples.append((time.perf_counter() - start) * 1e3)
    print(f"enforce_eager={enforce_eager}: prefill+sample ms {[round(s, 1) for s in samples]} "
          f"median {statistics.median(samples[2:]):.1f}")
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as trace:
        llm.generate([{"prompt_token_ids": list(range(500, 628))}], params, use_tqdm=False)
    table = trace.key_averages().table(sort_by="self_cpu_time_total", row_limit=12,
                                       max_name_column_width=60)
    print(table)
    llm.shutdown()
    del llm
    gc.collect()
    torch.cuda.empty_cache()


if __name__ == "__main__":
    probe(enforce_eager=False)
    probe(enforce_eager=True)
