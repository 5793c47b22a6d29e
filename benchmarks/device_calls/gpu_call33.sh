#!/usr/bin/env bash
# Device call (session 6, first): would two decode micro-batches on two streams hide attention
# behind the matmuls (overlap_probe.py), and which prefill attention tile is fastest
# (prefill_tile_sweep.py at 1024-token prompts)?
. benchmarks/gpu_setup.sh || exit 1
cd benchmarks/diagnostics
timeout 300 python3 overlap_probe.py 2>&1 | tee "$OUT/overlap-probe.txt" | grep -v Warning
timeout 200 python3 prefill_tile_sweep.py --prompt-lens 1024 >"$OUT/prefill-tiles.txt" 2>&1
grep -E "^==|TFLOP|^ *1024" "$OUT/prefill-tiles.txt" | head -40
