#!/usr/bin/env bash
# Device call (session 4): the low-latency decode-attention loop (a few rows: indices in one
# round trip, K and V of a tile together, the next pages prefetched; one split up to 512 keys).
# decode-1 latency before (ab_old/: the kernels of commit 37e098d) and after, alternating; the
# attention microbenchmark; the attention and engine gpu suites; the decode-1 record with HF.
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
R=$OUT/r; mkdir -p "$R"
mkdir -p /tmp/new && cp -r plugins /tmp/new/
lat() {
    timeout 80 tenon bench latency --model $M --load-format dummy \
        --dtype bfloat16 --max-model-len 4096 --input-len 128 --output-len 256 --num-iters 5 \
        --output-json "$R/latency-$1.json" >"$R/latency-$1.log" 2>&1
    echo "$1: $(grep -v '^tenon:' "$R/latency-$1.log" | grep -iE 'TPOT' | tail -1 | cut -c1-120)"
}
for round in 1 2; do
    cp -r ab_old/plugins/. plugins/; lat old$round
    cp -r /tmp/new/plugins/. plugins/; lat new$round
done
timeout 90 tenon bench attention --attention-backend triton --context-lens 256 512 1024 4096 32768 \
    --batch-sizes 1 4 64 --max-model-len 32768 --output-json "$OUT/decode-attention.json" >"$R/attention.log" 2>&1
grep -v '^tenon:' "$R/attention.log" | grep -E "^ +[0-9]" | awk '{print "  "$1" x "$2": "$4" us, "$6}'
timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider tests/plugins/attention >"$R/gpu-attention-tests.log" 2>&1
echo "gpu attention tests: $(tail -1 "$R/gpu-attention-tests.log")"; grep -E "^(FAILED|ERROR)" "$R/gpu-attention-tests.log" | head -8
timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider tests/backends/cuda >"$R/gpu-engine-tests.log" 2>&1
echo "gpu engine tests: $(tail -1 "$R/gpu-engine-tests.log")"; grep -E "^(FAILED|ERROR)" "$R/gpu-engine-tests.log" | head -8
timeout 120 tenon bench decode1-report --model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 \
    --no-eager-comparison --output-json "$OUT/decode-1.json" >"$R/decode1.log" 2>&1
grep -v '^tenon:' "$R/decode1.log" | tail -4
tar czf "$OUT/logs.tgz" -C "$R" . && rm -rf "$R"
