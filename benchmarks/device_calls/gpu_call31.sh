#!/usr/bin/env bash
# Device call (session 5, eighth): the LM head through the linear op (the tuned GEMV launches
# for the head). The CUDA engine suite, decode-1 record, and a second offline sample of the
# final tree (no HF baseline: the device time left allows no more).
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
R=$OUT/r; mkdir -p "$R"
timeout 120 python3 -m pytest -q -m gpu -p no:cacheprovider tests/backends/cuda/test_engine_on_cuda.py >"$R/gpu-engine-tests.log" 2>&1
echo "gpu engine tests: $(tail -1 "$R/gpu-engine-tests.log")"; grep -E "^(FAILED|ERROR)" "$R/gpu-engine-tests.log" | head -8
timeout 90 tenon bench decode1-report --model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 \
    --no-eager-comparison --output-json "$OUT/decode-1.json" >"$R/decode1.log" 2>&1
grep -v '^tenon:' "$R/decode1.log" | tail -3
timeout 120 tenon bench offline --model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 \
    --served-model-name llama-3.1-8b --num-prompts 200 1000 --output-json "$OUT/offline.json" >"$R/offline.log" 2>&1
grep -E 'offline-|copy' "$R/offline.log" | cut -c1-160
tar czf "$OUT/logs.tgz" -C "$R" . && rm -rf "$R"
