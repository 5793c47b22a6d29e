"""Which tile length and warps should the decode kernel's low-latency loop (launches of a few
rows) use? Times `tenon bench attention` at batch 1 and 4 for each pair, patched into this
process, picks the pair with the least mean time over the decode-1 contexts (256 and 512 keys)
and times decode-1 (`tenon bench latency`) with it.

    python3 benchmarks/diagnostics/low_latency_sweep.py OUT_DIR 64,4 128,4 128,8
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from tenon.cli.main import main as tenon_main
from tenon.plugins.attention.triton_paged import launch_config


def _patch(block_n: int, warps: int) -> None:
    launch_config.LOW_LATENCY_BLOCK_N = block_n
    launch_config.LOW_LATENCY_NUM_WARPS = warps


def main() -> None:
    out = Path(sys.argv[1])
    pairs = [tuple(int(part) for part in arg.split(",")) for arg in sys.argv[2:]]
    times: dict[tuple[int, ...], float] = {}
    for block_n, warps in pairs:
        _patch(block_n, warps)
        path = out / f"attention-n{block_n}-w{warps}.json"
        tenon_main(["bench", "attention", "--attention-backend", "triton", "--context-lens", "256",
                    "512", "1024", "4096", "--batch-sizes", "1", "4", "--max-model-len", "4096",
                    "--output-json", str(path)])
        records = json.loads(path.read_text())
        table = {(r["context_len"], r["batch_size"]): r["time_per_call_us"] for r in records}
        print(f"== block_n {block_n} warps {warps}: " + ", ".join(
            f"{context}x{batch} {us:.1f} us" for (context, batch), us in sorted(table.items())), flush=True)
        times[(block_n, warps)] = statistics.mean([table[(256, 1)], table[(512, 1)]])
    best = min(times, key=times.__getitem__)
    print(f"== best for decode-1 contexts: block_n {best[0]} warps {best[1]}", flush=True)
    _patch(*best)
    tenon_main(["bench", "latency", "--model", "benchmarks/configs/llama-3.1-8b", "--load-format",
                "dummy", "--dtype", "bfloat16", "--max-model-len", "4096", "--input-len", "128",
                "--output-len", "256", "--num-iters", "5",
                "--output-json", str(out / "latency-best.json")])


if __name__ == "__main__":
    main()
