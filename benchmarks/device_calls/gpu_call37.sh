#!/usr/bin/env bash
# Device call (session 6, fifth): is the device idle between kernels of decode steps? Device-only
# profiles (gpu_gaps.py) of pure decode steps at batch 1000 (128-token prompts), 200 (1000-token
# prompts) and 64 (512-token prompts: the HF baseline's shape).
. benchmarks/gpu_setup.sh || exit 1
for shape in "1000 128 24 20" "200 1000 40 20" "64 512 12 20"; do
    timeout 150 python3 benchmarks/diagnostics/gpu_gaps.py $shape >"$OUT/gaps-${shape// /-}.txt" 2>&1
    grep -vE "Warning|^tenon:|warn" "$OUT/gaps-${shape// /-}.txt" | tail -18
done
