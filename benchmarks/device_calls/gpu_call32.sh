#!/usr/bin/env bash
# Device call (session 5, ninth): did the new batch defaults cost decode-1 anything? decode-1
# latency (128 in / 256 out, batch 1) with the old limits (256 sequences, 8192 tokens, graphs
# up to 256) and with the new defaults, alternately, in one process each.
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
OLD="--max-num-seqs 256 --max-num-batched-tokens 8192 --cuda-graph-sizes 1 2 4 8 $(seq -s ' ' 16 16 256)"
for variant in old new old new; do
    flags=""; [ "$variant" = old ] && flags=$OLD
    timeout 60 tenon bench latency --model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 \
        --input-len 128 --output-len 256 --batch-size 1 --num-iters-warmup 1 --num-iters 3 $flags >"$OUT/latency-$variant.log" 2>&1
    echo "$variant: $(grep -E 'TPOT|output tok/s' "$OUT/latency-$variant.log" | tr '\n' ' ' | cut -c1-220)"
done
