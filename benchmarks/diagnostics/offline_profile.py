"""Where does an offline run's wall time go? Runs an offline-128-style batch (random 128-token
prompts, 128 output tokens, ignore_eos) under cProfile and prints the functions with the most
own time, plus how many steps replayed a graph and how many ran eagerly. Time spent in the
step's one synchronisation (`tolist`) is the host waiting for the GPU; the rest is host work
the GPU may be waiting for.

    python3 benchmarks/diagnostics/offline_profile.py [num_prompts] [input_len] [output_len]
"""

from __future__ import annotations

import cProfile
import pstats
import time

from offline_setup import dummy_llm, random_batch, workload_from_argv


def main() -> None:
    num_prompts, input_len, output_len = workload_from_argv((512, 128, 128))
    llm = dummy_llm()
    prompts, params = random_batch(llm, num_prompts, input_len, output_len)
    llm.generate(prompts[:8], params, use_tqdm=False)  # warm-up
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    llm.generate(prompts, params, use_tqdm=False)
    profiler.disable()
    elapsed_s = time.perf_counter() - start
    print(f"{num_prompts} prompts {input_len} in / {output_len} out: {elapsed_s:.2f} s under "
          f"cProfile, {num_prompts * output_len / elapsed_s:.0f} output tok/s")
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(40)
    llm.shutdown()


if __name__ == "__main__":
    main()
