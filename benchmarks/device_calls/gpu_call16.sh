#!/usr/bin/env bash
# Device call (session 4): programmatic dependent launch (PDL) in the decode chain's Triton
# kernels. decode-1 latency with PDL off and on, alternating, in one call; the ops, triton-support
# and engine gpu suites (bf16, graphs) with PDL on; then the decode-1 record with HF.
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
R=$OUT/r; mkdir -p "$R"
for run in 0a 1a 0b 1b; do
    TENON_DEPENDENT_LAUNCH=${run:0:1} timeout 100 tenon bench latency --model $M --load-format dummy \
        --dtype bfloat16 --max-model-len 4096 --input-len 128 --output-len 256 --num-iters 3 \
        --output-json "$R/latency-pdl$run.json" >"$R/latency-pdl$run.log" 2>&1
    echo "pdl=$run: $(grep -v '^tenon:' "$R/latency-pdl$run.log" | tail -2 | tr '\n' ' ' | cut -c1-300)"
done
timeout 200 python3 -m pytest -q -m gpu -p no:cacheprovider tests/plugins/ops tests/plugins/triton_support \
    >"$R/gpu-ops-tests.log" 2>&1
echo "gpu ops tests: $(tail -1 "$R/gpu-ops-tests.log")"; grep -E "^(FAILED|ERROR)" "$R/gpu-ops-tests.log" | head -8
timeout 170 python3 -m pytest -q -m gpu -p no:cacheprovider tests/backends/cuda >"$R/gpu-engine-tests.log" 2>&1
echo "gpu engine tests: $(tail -1 "$R/gpu-engine-tests.log")"; grep -E "^(FAILED|ERROR)" "$R/gpu-engine-tests.log" | head -8
timeout 120 tenon bench decode1-report --model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 \
    --no-eager-comparison --output-json "$OUT/decode-1.json" >"$R/decode1.log" 2>&1
grep -v '^tenon:' "$R/decode1.log" | tail -5
tar czf "$OUT/logs.tgz" -C "$R" . && rm -rf "$R"
