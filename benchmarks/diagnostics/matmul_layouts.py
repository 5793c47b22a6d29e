"""Does cuBLAS pick faster kernels for the decode-batch matmuls of an 8B model when the weight is
stored [in, out] (x @ W) instead of [out, in] (F.linear)? Times both, bf16, per shape and batch,
over weights rotated past L2, each replayed in a CUDA graph; prints TFLOP/s and GB/s.

    python3 benchmarks/diagnostics/matmul_layouts.py
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from gemv_vs_cublas import graph_call_s  # this folder's graph-replay timer

SHAPES = {"qkv": (6144, 4096), "o_proj": (4096, 4096), "gate_up": (28672, 4096), "down": (4096, 14336)}
BATCHES = (32, 64, 128, 200, 256, 512)


def main() -> None:
    torch.manual_seed(0)
    print(f"{torch.cuda.get_device_name()}; torch {torch.__version__}")
    print(f"{'shape':8s} {'M':>4s} {'linear us':>10s} {'TF/s':>6s} {'x@Wt us':>9s} {'TF/s':>6s} {'gain':>5s}")
    for name, (out_features, in_features) in SHAPES.items():
        copies = max(2, (256 << 20) // (out_features * in_features * 2) + 1)
        weights = [torch.randn(out_features, in_features, device="cuda", dtype=torch.bfloat16) * 0.02
                   for _ in range(copies)]
        transposed = [weight.t().contiguous() for weight in weights]
        for batch in BATCHES:
            x = torch.randn(batch, in_features, device="cuda", dtype=torch.bfloat16)
            linear_us = graph_call_s(F.linear, x, weights) * 1e6
            matmul_us = graph_call_s(torch.matmul, x, transposed) * 1e6
            flops = 2 * batch * out_features * in_features
            print(f"{name:8s} {batch:4d} {linear_us:10.1f} {flops / linear_us / 1e6:6.0f} "
                  f"{matmul_us:9.1f} {flops / matmul_us / 1e6:6.0f} {linear_us / matmul_us:5.2f}")
        del weights, transposed
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
