"""Prefill attention reaches about 200 TFLOP/s on an H200 (1000-token prompts, Llama-3.1-8B
layer): which tile does better? Runs `tenon bench prefill-attention` (bf16, rotating buffers,
CUDA graph, torch-sdpa on the same buffers as the baseline) for each (block_m, block_n,
num_stages, num_warps) below, patched into the Triton backend in this process; the first is the
tile `launch_config.prefill_tiles` picks today for head size 128.

    python3 benchmarks/diagnostics/prefill_tile_sweep.py [--prompt-lens 512 1024 4096]
"""

from __future__ import annotations

import sys

import attrs

from tenon.cli.main import main as tenon_main
from tenon.plugins.attention.triton_paged import backend, launch_config

TILES = (  # block_m, block_n, num_stages, num_warps
    (128, 64, 3, 8),
    (128, 128, 2, 8),
    (128, 128, 3, 8),
    (128, 64, 4, 8),
    (64, 64, 3, 4),
    (64, 128, 3, 4),
    (128, 32, 4, 8),
)


def main() -> None:
    prompt_lens = sys.argv[sys.argv.index("--prompt-lens") + 1:] if "--prompt-lens" in sys.argv else [
        "512", "1024", "4096"]
    original_tiles = launch_config.prefill_tiles
    for block_m, block_n, num_stages, num_warps in TILES:

        def tiles(*, head_size: int, group_size: int, element_bytes: int, max_query_len: int,
                  _m: int = block_m, _n: int = block_n, _s: int = num_stages,
                  _w: int = num_warps) -> launch_config.PrefillTiles:
            chosen = original_tiles(head_size=head_size, group_size=group_size, element_bytes=element_bytes,
                                    max_query_len=max_query_len)
            block_m = min(_m, chosen.block_m) if chosen.block_m < 128 else _m  # short queries keep short tiles
            return attrs.evolve(chosen, block_m=block_m, block_q=block_m // group_size, block_n=_n,
                                num_stages=_s, num_warps=_w)

        backend.prefill_tiles = tiles  # type: ignore[assignment]
        print(f"== block_m {block_m}, block_n {block_n}, stages {num_stages}, warps {num_warps}", flush=True)
        tenon_main(["bench", "prefill-attention", "--prompt-lens", *prompt_lens, "--num-prompts", "8",
                    "--baseline-backend", "torch-sdpa"])


if __name__ == "__main__":
    main()
