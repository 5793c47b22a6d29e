#!/usr/bin/env bash
# Device call (session 3, last): the engine gpu suite on the final tree, then offline-1k,
# offline-128 and the HF batch-64 baseline with everything of this session in.
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
timeout 120 python3 -m pytest -q -m gpu -p no:cacheprovider tests/backends/cuda >"$OUT/gpu-engine-tests.log" 2>&1
echo "gpu engine tests: $(tail -1 "$OUT/gpu-engine-tests.log")"; grep -E "^(FAILED|ERROR)" "$OUT/gpu-engine-tests.log" | head -5
timeout 230 tenon bench offline --model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 \
    --served-model-name llama-3.1-8b --num-prompts 200 1000 --hf-baseline --hf-num-iters 1 \
    --output-json "$OUT/offline.json" >"$OUT/offline.log" 2>&1
grep -v '^tenon:' "$OUT/offline.log" | tail -8
