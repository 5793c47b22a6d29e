#!/usr/bin/env bash
# Device call (session 6, eighth): decode graphs every 16 rows with the slower sizes dropped.
# The CUDA engine suite, decode-1 (the batch-1 graph must stay), and the final offline records
# (offline-1k 1000 prompts, offline-128 5000, HF batch-64 baseline) in one call.
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
ARGS="--model $M --load-format dummy --dtype bfloat16 --max-model-len 4096"
timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider tests/backends/cuda/test_engine_on_cuda.py >"$OUT/gpu-engine-tests.log" 2>&1
echo "gpu engine tests: $(tail -1 "$OUT/gpu-engine-tests.log")"; grep -E "^(FAILED|ERROR)|^E " "$OUT/gpu-engine-tests.log" | head -8
timeout 100 tenon bench decode1-report $ARGS --no-eager-comparison --output-json "$OUT/decode-1.json" >"$OUT/decode1.log" 2>&1
grep -v '^tenon:' "$OUT/decode1.log" | tail -3
timeout 420 tenon bench offline $ARGS --served-model-name llama-3.1-8b --num-prompts 1000 5000 --hf-baseline \
    --hf-num-iters 1 --output-json "$OUT/offline-final.json" >"$OUT/offline-final.log" 2>&1
echo "offline (rc $?):"; grep -E '^  (offline|hf-)|copy band' "$OUT/offline-final.log"
grep -E "decode graph|graphs" "$OUT/offline-final.log" | head -4 | cut -c1-400
