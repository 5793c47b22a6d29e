#!/usr/bin/env bash
# Device call: engine + GEMV gpu tests, decode-1 with the tuned GEMV, an import-time probe of
# start-up, decode attention alone, offline-1k / offline-128 with the HF batch-64 baseline.
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
timeout 100 python3 -m pytest -q -m gpu -p no:cacheprovider --maxfail=10 tests/backends/cuda \
    tests/plugins/ops/test_gemv_on_cuda.py >"$OUT/gpu-tests.log" 2>&1
echo "gpu tests: $(tail -1 "$OUT/gpu-tests.log")"; grep -E "^(FAILED|ERROR)" "$OUT/gpu-tests.log" | head -8
timeout 80 tenon bench latency --model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 \
    --num-iters-warmup 1 --num-iters 3 --output-json "$OUT/latency-graphs.json" >"$OUT/latency.log" 2>&1
tail -4 "$OUT/latency.log"
timeout 40 python3 -X importtime -c "from transformers import AutoConfig; AutoConfig.from_pretrained('$M')" \
    2>"$OUT/importtime.txt"; sort -t'|' -k2 -n "$OUT/importtime.txt" | tail -12 | cut -c1-140
timeout 100 tenon bench attention --attention-backend triton --context-lens 4096 32768 \
    --batch-sizes 1 64 --output-json "$OUT/decode-attention.json" >"$OUT/attention.log" 2>&1
tail -8 "$OUT/attention.log"
timeout 230 tenon bench offline --model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 \
    --served-model-name llama-3.1-8b --num-prompts 200 1000 --hf-baseline --hf-num-iters 1 \
    --output-json "$OUT/offline.json" >"$OUT/offline.log" 2>&1
grep -v '^tenon:' "$OUT/offline.log" | tail -10
