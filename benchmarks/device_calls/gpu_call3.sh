#!/usr/bin/env bash
# Device call: gpu tests, GEMV vs cuBLAS, decode-1 report (graphs, eager, HF batch 1), start-up.
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
timeout 200 python3 -m pytest -q -m gpu -p no:cacheprovider --maxfail=20 tests/plugins/ops \
    tests/plugins/attention tests/backends/cuda >"$OUT/gpu-tests.log" 2>&1
echo "gpu tests: $(tail -1 "$OUT/gpu-tests.log")"; grep -E "^(FAILED|ERROR)" "$OUT/gpu-tests.log" | head -12
timeout 90 python3 benchmarks/diagnostics/gemv_vs_cublas.py >"$OUT/gemv.txt" 2>&1; tail -25 "$OUT/gemv.txt"
timeout 230 tenon bench decode1-report --model $M --load-format dummy --dtype bfloat16 \
    --max-model-len 4096 --num-iters-warmup 1 --num-iters 3 --hf-num-iters 1 \
    --output-json "$OUT/decode1.json" >"$OUT/decode1.log" 2>&1; tail -12 "$OUT/decode1.log"
timeout 100 bash benchmarks/startup_cold_warm.sh "$OUT" 2>&1 | cut -c1-400
