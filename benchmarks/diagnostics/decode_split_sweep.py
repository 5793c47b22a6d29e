"""How many keys should one decode split take at batch 1? Runs `tenon bench attention` (llama
layer, bf16, rotating buffers, CUDA graph, launch sized for --max-model-len 4096) and then
`tenon bench latency` (decode-1 shape) for several values of the decode kernel's
MIN_KEYS_PER_SPLIT, patched in this process.

    python3 benchmarks/diagnostics/decode_split_sweep.py 64 128 256 512
"""

from __future__ import annotations

import sys

from tenon.cli.main import main as tenon_main
from tenon.plugins.attention.triton_paged import decode_kernel


def main() -> None:
    for value in (int(arg) for arg in sys.argv[1:]):
        decode_kernel.MIN_KEYS_PER_SPLIT = value
        print(f"== MIN_KEYS_PER_SPLIT = {value}", flush=True)
        tenon_main(["bench", "attention", "--attention-backend", "triton", "--context-lens", "256", "512",
                    "1024", "4096", "--batch-sizes", "1", "--max-model-len", "4096"])
        tenon_main(["bench", "latency", "--model", "benchmarks/configs/llama-3.1-8b", "--load-format",
                    "dummy", "--dtype", "bfloat16", "--max-model-len", "4096", "--input-len", "128",
                    "--output-len", "256", "--batch-size", "1", "--num-iters-warmup", "1",
                    "--num-iters", "3"])


if __name__ == "__main__":
    main()
