"""Batched decode attention below copy bandwidth at short contexts (batch 64 at 512 keys: about
80%): which split count and tile fit batches of 64 and 200? Runs `tenon bench attention` (llama
layer, bf16, rotating buffers, CUDA graph, launch sized for --max-model-len 4096) for each
PROGRAMS_PER_SM (how many programs a launch aims for per SM, so how many splits a batch takes)
and each pipelined-loop tile (keys per iteration, stages, warps), patched in this process.

    python3 benchmarks/diagnostics/decode_batch_sweep.py [--context-lens N ...] [--batch-sizes N ...]
"""

from __future__ import annotations

import sys

import attrs

from tenon.cli.main import main as tenon_main
from tenon.plugins.attention.triton_paged import backend, launch_config

TILES = ((64, 3, 4), (128, 2, 4), (128, 3, 8), (32, 4, 4))  # block_n, num_stages, num_warps
PROGRAMS_PER_SM = (2, 4, 8)


def _list_arg(flag: str, default: list[str]) -> list[str]:
    if flag not in sys.argv:
        return default
    values = []
    for arg in sys.argv[sys.argv.index(flag) + 1:]:
        if arg.startswith("--"):
            break
        values.append(arg)
    return values


def main() -> None:
    context_lens = _list_arg("--context-lens", ["512", "1024", "2048"])
    batch_sizes = _list_arg("--batch-sizes", ["64", "200"])
    original_tiles = launch_config.decode_tiles
    for programs_per_sm in PROGRAMS_PER_SM:
        for block_n, num_stages, num_warps in TILES:
            launch_config.PROGRAMS_PER_SM = programs_per_sm

            def tiles(*, head_size: int, group_size: int, element_bytes: int,
                      _n: int = block_n, _s: int = num_stages, _w: int = num_warps) -> launch_config.DecodeTiles:
                chosen = original_tiles(head_size=head_size, group_size=group_size, element_bytes=element_bytes)
                return attrs.evolve(chosen, block_n=_n, num_stages=_s, num_warps=_w)

            backend.decode_tiles = tiles  # type: ignore[assignment]
            print(f"== PROGRAMS_PER_SM {programs_per_sm}, block_n {block_n}, stages {num_stages}, "
                  f"warps {num_warps}", flush=True)
            tenon_main(["bench", "attention", "--attention-backend", "triton", "--context-lens", *context_lens,
                        "--batch-sizes", *batch_sizes, "--max-model-len", "4096"])


if __name__ == "__main__":
    main()
