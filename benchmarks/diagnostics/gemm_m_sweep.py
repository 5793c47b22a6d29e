"""How does a decode step's matmul time grow with its row count? cuBLAS picks tiles per shape,
so time is not monotonic in the rows: padding a batch to a few more rows may be faster. Times
llama-3.1-8b's layer matmuls (qkv, o_proj, gate_up, down; bf16, random weights, four layers of
weights so L2 serves nothing) plus the LM head at each row count, in a CUDA graph, and prints
us per layer, the rate, and whether some larger row count up to +64 is faster.

    python3 benchmarks/diagnostics/gemm_m_sweep.py [first last step]   (default 16 1024 16)
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from tenon.bench.gpu_limits import time_op_s

HIDDEN, INTERMEDIATE, QKV, VOCAB = 4096, 14336, 6144, 128256
NUM_LAYERS = 4


def main() -> None:
    first, last, step = ([int(arg) for arg in sys.argv[1:4]] + [16, 1024, 16][len(sys.argv[1:4]):])
    device, dtype = torch.device("cuda"), torch.bfloat16
    layers = [[torch.randn(out, inp, dtype=dtype, device=device) * 0.02
               for out, inp in ((QKV, HIDDEN), (HIDDEN, HIDDEN), (2 * INTERMEDIATE, HIDDEN), (HIDDEN, INTERMEDIATE))]
              for _ in range(NUM_LAYERS)]
    head = torch.randn(VOCAB, HIDDEN, dtype=dtype, device=device) * 0.02
    layer_flops_per_row = 2 * sum(w.numel() for w in layers[0])
    times: dict[int, tuple[float, float]] = {}
    print(f"{torch.cuda.get_device_name(device)}: llama-3.1-8b layer matmuls and LM head, per row count")
    print(f"{'rows':>5} {'us/layer':>9} {'TFLOP/s':>8} {'head us':>8}")
    for rows in range(first, last + 1, step):
        x_hidden = torch.randn(rows, HIDDEN, dtype=dtype, device=device)
        x_inter = torch.randn(rows, INTERMEDIATE, dtype=dtype, device=device)

        def layers_cycle(x_hidden: torch.Tensor = x_hidden, x_inter: torch.Tensor = x_inter) -> None:
            for qkv, o, gate_up, down in layers:
                F.linear(x_hidden, qkv)
                F.linear(x_hidden, o)
                F.linear(x_hidden, gate_up)
                F.linear(x_inter, down)

        def head_cycle(x_hidden: torch.Tensor = x_hidden) -> None:
            F.linear(x_hidden, head)

        results = []
        for cycle, calls in ((layers_cycle, NUM_LAYERS), (head_cycle, 1)):
            cycle()
            torch.cuda.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                cycle()
            samples = sorted(time_op_s(graph.replay, device, num_warmup=3, num_repeats=11))
            results.append(samples[len(samples) // 2] / calls * 1e6)
        layer_us, head_us = results
        times[rows] = (layer_us, head_us)
        print(f"{rows:>5} {layer_us:9.1f} {rows * layer_flops_per_row / layer_us / 1e6:8.1f} {head_us:8.1f}",
              flush=True)
    print("row counts a larger one (up to +64 rows) beats, per step of 32 layers and the head:")
    for rows, (layer_us, head_us) in times.items():
        step_us = 32 * layer_us + head_us
        better = [(other, 32 * t[0] + t[1]) for other, t in times.items() if rows < other <= rows + 64]
        best = min(better, key=lambda item: item[1], default=None)
        if best is not None and best[1] < step_us * 0.98:
            print(f"  {rows:>5}: {step_us / 1e3:6.2f} ms; {best[0]} rows: {best[1] / 1e3:6.2f} ms "
                  f"({1 - best[1] / step_us:.1%} less)")


if __name__ == "__main__":
    main()
