#!/usr/bin/env bash
# Device call (session 4): the final tree. The attention gpu suite (the fused-rotary cases now
# compare the compiled output within the dtype's tolerance), the decode-1 record with HF, and
# offline-1k (200 prompts) / offline-128 (1000 prompts) with the HF batch-64 baseline.
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
R=$OUT/r; mkdir -p "$R"
timeout 200 python3 -m pytest -q -m gpu -p no:cacheprovider tests/plugins/attention >"$R/gpu-attention-tests.log" 2>&1
echo "gpu attention tests: $(tail -1 "$R/gpu-attention-tests.log")"; grep -E "^(FAILED|ERROR)" "$R/gpu-attention-tests.log" | head -8
timeout 120 tenon bench decode1-report --model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 \
    --no-eager-comparison --output-json "$OUT/decode-1.json" >"$R/decode1.log" 2>&1
grep -v '^tenon:' "$R/decode1.log" | tail -4
timeout 210 tenon bench offline --model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 \
    --served-model-name llama-3.1-8b --num-prompts 200 1000 --hf-baseline --hf-num-iters 1 \
    --output-json "$OUT/offline.json" >"$R/offline.log" 2>&1
grep -v '^tenon:' "$R/offline.log" | tail -10
tar czf "$OUT/logs.tgz" -C "$R" . && rm -rf "$R"
