#!/usr/bin/env bash
# Device call (session 3): the split-merge fix on the GPU (attention and engine gpu tests),
# decode attention alone at short and long contexts, decode-1, cold and warm start-up (with the
# time from process creation).
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
R=$OUT/r; mkdir -p "$R"
timeout 240 python3 -m pytest -q -m gpu -p no:cacheprovider -x tests/plugins/attention >"$R/gpu-attention-tests.log" 2>&1
echo "gpu attention tests: $(tail -1 "$R/gpu-attention-tests.log")"; grep -E "^(FAILED|ERROR)" "$R/gpu-attention-tests.log" | head -5
timeout 120 tenon bench attention --attention-backend triton --context-lens 256 512 4096 32768 \
    --batch-sizes 1 64 --output-json "$OUT/decode-attention.json" >"$R/attention.log" 2>&1
tail -11 "$R/attention.log"
timeout 150 tenon bench decode1-report --model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 \
    --no-eager-comparison --output-json "$OUT/decode-1.json" >"$R/decode1.log" 2>&1
grep -v '^tenon:' "$R/decode1.log" | tail -5
bash benchmarks/startup_cold_warm.sh "$R" 2>&1 | cut -c1-300
grep -h "from process creation" "$R"/startup-*.log
cp "$R/startup-cold.json" "$R/startup-warm.json" "$OUT/" 2>/dev/null
timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider tests/backends/cuda >"$R/gpu-engine-tests.log" 2>&1
echo "gpu engine tests: $(tail -1 "$R/gpu-engine-tests.log")"; grep -E "^(FAILED|ERROR)" "$R/gpu-engine-tests.log" | head -5
tar czf "$OUT/logs.tgz" -C "$R" . && rm -rf "$R"
