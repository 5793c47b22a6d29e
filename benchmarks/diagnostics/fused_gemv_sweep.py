"""Launch sweep for decode's one-token GEMVs as decode-1 runs them (Llama-3.1-8B, bf16): the
fused RMSNorm GEMV on qkv and gate_up, the fused SiLU GEMV on down, the plain GEMV on o_proj.
Each launch is replayed in a CUDA graph over weight copies past L2; prints microseconds and
GB/s per launch, the best four per shape.

    python3 benchmarks/diagnostics/fused_gemv_sweep.py
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from gemv_vs_cublas import graph_call_s  # this folder's graph-replay timer

from tenon.plugins.ops.triton_kernels.gemv import GemvConfig, gemv
from tenon.plugins.ops.triton_kernels.gemv_fused import gemv_rms_norm, gemv_silu_and_mul

SHAPES = (("qkv", 6144, 4096, "norm"), ("gate_up", 28672, 4096, "norm"),
          ("down", 4096, 14336, "silu"), ("o_proj", 4096, 4096, "plain"))
CONFIGS = [GemvConfig(kernel="fma", block_n=n, block_k=k, num_splits=1, num_warps=w, num_stages=s)
           for n, k, w, s in itertools.product((4, 8, 16, 32), (256, 512), (4, 8), (2, 3))]


def _launcher(kind: str, config: GemvConfig, norm_weight: torch.Tensor,
              residual: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], object]:
    def run(x: torch.Tensor, weight: torch.Tensor) -> object:
        if kind == "norm":
            return gemv_rms_norm(x, norm_weight, 1e-5, weight, residual, config=config)
        if kind == "silu":
            return gemv_silu_and_mul(x, weight, config=config)
        return gemv(x, weight, None, config)

    return run


def main() -> None:
    torch.manual_seed(0)
    dtype, device = torch.bfloat16, torch.device("cuda")
    best: dict[str, tuple[float, GemvConfig]] = {}
    for name, out_features, in_features, kind in SHAPES:
        copies = max(2, int(300e6 // (out_features * in_features * 2)) + 1)
        weights = [torch.randn(out_features, in_features, device=device, dtype=dtype) * 0.02
                   for _ in range(copies)]
        width = 2 * in_features if kind == "silu" else in_features
        x = torch.randn(1, width, device=device, dtype=dtype)
        residual = torch.randn(1, in_features, device=device, dtype=dtype)
        norm_weight = torch.rand(in_features, device=device, dtype=dtype) + 0.5
        results = []
        for config in CONFIGS:
            run = _launcher(kind, config, norm_weight, residual)
            try:
                results.append((graph_call_s(run, x, weights) * 1e6, config))
            except Exception as error:  # a launch that does not compile (registers): skip it
                print(f"{name} {config}: {type(error).__name__}")
        results.sort(key=lambda item: item[0])
        bytes_moved = out_features * in_features * 2
        for micros, config in results[:4]:
            print(f"{name:8s} {micros:7.2f} us {bytes_moved / micros / 1e3:7.0f} GB/s  "
                  f"n{config.block_n} k{config.block_k} w{config.num_warps} p{config.num_stages}")
        best[name] = results[0]
        del weights
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
