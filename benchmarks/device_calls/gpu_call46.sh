#!/usr/bin/env bash
# Device call (session 7, fifth): could attention overlap the matmuls if cuBLAS left SMs free?
# overlap_probe.py with SM carveouts 0/16/32/48 at offline-1k-like (440 x 1500, 512 x 1500) and
# offline-128-like (1000 x 192) decode shapes.
. benchmarks/gpu_setup.sh || exit 1
timeout 300 python3 benchmarks/diagnostics/overlap_probe.py 440:1500 512:1500 1000:192 carveouts=0,16,32,48 \
    >"$OUT/overlap-carveout.txt" 2>&1; echo "rc $?"; grep -v Warning "$OUT/overlap-carveout.txt" | tail -16
