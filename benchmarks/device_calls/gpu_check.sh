#!/usr/bin/env bash
# One device-machine call: the gpu test suite, then decode-1 (llama-3.1-8b, dummy bf16) with
# CUDA graphs and eagerly, with start-up phases. Full logs under $OUT; a short summary last.
# Usage (from the repo root, .whl carried): bash benchmarks/device_calls/gpu_check.sh [pytest paths...]
. benchmarks/gpu_setup.sh || exit 1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
paths=("${@:-tests/plugins/attention tests/plugins/ops tests/backends/cuda}")
# shellcheck disable=SC2068
timeout 330 python3 -m pytest -q -m gpu -p no:cacheprovider --maxfail=15 ${paths[@]} \
    >"$OUT/gpu-tests.log" 2>&1
echo "gpu tests: $(tail -1 "$OUT/gpu-tests.log")"
grep -E "^(FAILED|ERROR)" "$OUT/gpu-tests.log" | head -15
M=benchmarks/configs/llama-3.1-8b
for mode in graphs eager; do
    extra=()
    [ "$mode" = eager ] && extra=(--enforce-eager)
    timeout 150 tenon bench latency --model $M --load-format dummy --dtype bfloat16 \
        --max-model-len 4096 --num-iters-warmup 1 --num-iters 3 "${extra[@]}" \
        --output-json "$OUT/latency-$mode.json" >"$OUT/latency-$mode.log" 2>&1
    echo "== decode-1 $mode"; tail -5 "$OUT/latency-$mode.log"
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); s=d['startup']; print('start-up', round(s['wall_s'],1), 's:', {k: round(v,1) for k, v in s['phases_s'].items()})" "$OUT/latency-$mode.json" 2>/dev/null
done
