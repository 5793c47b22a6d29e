#!/usr/bin/env bash
# Device call (session 7, seventh): decode-1 on the final tree (batch-1 graph kept by pruning,
# sizes cached for the second engine start of the report).
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
timeout 200 tenon bench decode1-report --model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 \
    --no-eager-comparison --output-json "$OUT/decode-1.json" >"$OUT/decode1.log" 2>&1
echo "decode-1 (rc $?):"; grep -v '^tenon:' "$OUT/decode1.log" | tail -4
