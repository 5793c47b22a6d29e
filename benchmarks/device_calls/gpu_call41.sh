#!/usr/bin/env bash
# Device call (session 6, ninth): decode-graph pruning A/B on offline-1k shapes (500 prompts,
# enough for ~440-request decode steps once the cache is full): the 5th session's graph sizes
# (given explicitly, so nothing is pruned) against the default (every 16 rows, slower dropped).
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
OLD="$(echo 1 2 4 8 $(seq 16 16 256) $(seq 288 32 512) $(seq 576 64 1024))"
for variant in old pruned; do
    flags=""; [ "$variant" = old ] && flags="--cuda-graph-sizes $OLD"
    timeout 140 tenon bench offline --model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 \
        --served-model-name llama-3.1-8b --workload offline-1k --num-prompts 500 $flags \
        --output-json "$OUT/offline-1k-500-$variant.json" >"$OUT/offline-1k-500-$variant.log" 2>&1
    echo "$variant (rc $?): $(grep -E '^  offline-1k' "$OUT/offline-1k-500-$variant.log")"
done
