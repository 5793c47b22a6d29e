#!/usr/bin/env bash
# Device call (session 4): the decode kernel rotating query and key itself (`forward_rotating`,
# no rotary launch in 16-bit decode steps). Attention and engine gpu suites (bf16 fused path,
# graphs); decode-1 before (ab_old/: the attention plugin of commit 37e098d, which never rotates
# inside) and after, alternating; the decode-1 record with HF.
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
timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider tests/plugins/attention >"$R/gpu-attention-tests.log" 2>&1
echo "gpu attention tests: $(tail -1 "$R/gpu-attention-tests.log")"; grep -E "^(FAILED|ERROR)" "$R/gpu-attention-tests.log" | head -8
timeout 120 python3 -m pytest -q -m gpu -p no:cacheprovider tests/backends/cuda >"$R/gpu-engine-tests.log" 2>&1
echo "gpu engine tests: $(tail -1 "$R/gpu-engine-tests.log")"; grep -E "^(FAILED|ERROR)" "$R/gpu-engine-tests.log" | head -8
for round in 1 2; do
    cp -r ab_old/plugins/. plugins/; lat old$round
    cp -r /tmp/new/plugins/. plugins/; lat new$round
done
timeout 120 tenon bench decode1-report --model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 \
    --no-eager-comparison --output-json "$OUT/decode-1.json" >"$R/decode1.log" 2>&1
grep -v '^tenon:' "$R/decode1.log" | tail -4
tar czf "$OUT/logs.tgz" -C "$R" . && rm -rf "$R"
