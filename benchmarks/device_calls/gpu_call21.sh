#!/usr/bin/env bash
# Device call (session 4): longer tiles for the low-latency decode loop (fewer round trips per
# split): block_n x warps sweep at batch 1 and 4 with decode-1 at the best pair; decode-1 before
# (ab_old/) and with the defaults, alternating; the attention gpu suite; the decode-1 record.
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
timeout 200 python3 benchmarks/diagnostics/low_latency_sweep.py "$R" 64,4 128,4 128,8 >"$R/sweep.log" 2>&1
grep -E "^==|TPOT" "$R/sweep.log"; grep -E "Error|error:" "$R/sweep.log" | head -5
for round in 1 2; do
    cp -r ab_old/plugins/. plugins/; lat old$round
    cp -r /tmp/new/plugins/. plugins/; lat new$round
done
timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider tests/plugins/attention >"$R/gpu-attention-tests.log" 2>&1
echo "gpu attention tests: $(tail -1 "$R/gpu-attention-tests.log")"; grep -E "^(FAILED|ERROR)" "$R/gpu-attention-tests.log" | head -8
timeout 120 tenon bench decode1-report --model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 \
    --no-eager-comparison --output-json "$OUT/decode-1.json" >"$R/decode1.log" 2>&1
grep -v '^tenon:' "$R/decode1.log" | tail -4
tar czf "$OUT/logs.tgz" -C "$R" . && rm -rf "$R"
