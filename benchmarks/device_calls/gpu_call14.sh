#!/usr/bin/env bash
# Device call (session 3): the fused one-token ops (RMSNorm and SiLU-and-mul inside the GEMVs)
# on the GPU: ops and engine gpu suites in bf16, then decode-1 with HF in the same call.
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
R=$OUT/r; mkdir -p "$R"
timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider tests/plugins/ops >"$R/gpu-ops-tests.log" 2>&1
echo "gpu ops tests: $(tail -1 "$R/gpu-ops-tests.log")"; grep -E "^(FAILED|ERROR)" "$R/gpu-ops-tests.log" | head -8
timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider tests/backends/cuda >"$R/gpu-engine-tests.log" 2>&1
echo "gpu engine tests: $(tail -1 "$R/gpu-engine-tests.log")"; grep -E "^(FAILED|ERROR)" "$R/gpu-engine-tests.log" | head -8
timeout 150 tenon bench decode1-report --model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 \
    --no-eager-comparison --output-json "$OUT/decode-1.json" >"$R/decode1.log" 2>&1
grep -v '^tenon:' "$R/decode1.log" | tail -5
tar czf "$OUT/logs.tgz" -C "$R" . && rm -rf "$R"
