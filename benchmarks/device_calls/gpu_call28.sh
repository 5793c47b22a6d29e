#!/usr/bin/env bash
# Device call (session 5, fifth): decode-1 record on the tree with the platform batch defaults;
# kernel time per decode step at batch 200 (1000-token prompts), 64 (512) and 1000 (128).
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
R=$OUT/r; mkdir -p "$R"
timeout 150 tenon bench decode1-report --model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 \
    --no-eager-comparison --output-json "$OUT/decode-1.json" >"$R/decode1.log" 2>&1
grep -v '^tenon:' "$R/decode1.log" | tail -4
D=benchmarks/diagnostics
for shape in "200 1000 40 20" "64 512 12 20" "1000 128 24 10"; do
    timeout 90 python3 $D/decode_step_kernels.py $shape >"$R/kernels-${shape// /-}.txt" 2>&1
    grep -v -i "warn\|USDT\|profiler" "$R/kernels-${shape// /-}.txt" | tail -28 | cut -c1-130
done
tar czf "$OUT/logs.tgz" -C "$R" . && rm -rf "$R"
