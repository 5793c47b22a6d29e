#!/usr/bin/env bash
# Device call (session 7, fourth): the final offline records on this session's tree (strided
# q/k/v rows in prefill; the limit now also at the sustained matmul rate): offline-1k at 1000
# prompts, offline-128 at 5000, and HF generate() on the batch-64 shape, in one call.
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
ARGS="--model $M --load-format dummy --dtype bfloat16 --max-model-len 4096"
timeout 480 tenon bench offline $ARGS --served-model-name llama-3.1-8b --num-prompts 1000 5000 --hf-baseline \
    --hf-num-iters 1 --output-json "$OUT/offline-final.json" >"$OUT/offline-final.log" 2>&1
echo "offline (rc $?):"; grep -E '^  (offline|hf-)|copy band|workload' "$OUT/offline-final.log"
grep -E "ready in|graphs" "$OUT/offline-final.log" | head -3 | cut -c1-300
