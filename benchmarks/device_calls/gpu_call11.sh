#!/usr/bin/env bash
# Device call (session 3): decode attention with per-sequence split counts (bf16 gpu tests,
# microbenchmark, decode-1), cuBLAS layouts at decode batches, serve-32 with asynchronous
# scheduling. Logs go to one tarball (the call returns few files).
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
R=$OUT/r; mkdir -p "$R"
timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider tests/plugins/attention tests/backends/cuda \
    >"$R/gpu-tests.log" 2>&1
echo "gpu tests: $(tail -1 "$R/gpu-tests.log")"; grep -E "^(FAILED|ERROR)" "$R/gpu-tests.log" | head -8
timeout 100 tenon bench attention --attention-backend triton --context-lens 512 4096 32768 \
    --batch-sizes 1 64 --output-json "$R/decode-attention.json" >"$R/attention.log" 2>&1
tail -9 "$R/attention.log"
timeout 150 tenon bench decode1-report --model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 \
    --no-eager-comparison --output-json "$OUT/decode-1.json" >"$R/decode1.log" 2>&1
grep -v '^tenon:' "$R/decode1.log" | tail -6
timeout 60 python3 benchmarks/diagnostics/matmul_layouts.py >"$R/matmul-layouts.txt" 2>&1; cat "$R/matmul-layouts.txt"
OUTPUT_JSON=$OUT/serve-32-gpu.json timeout 260 bash benchmarks/run_serve32_gpu.sh >"$R/serve32.log" 2>&1
tail -6 "$R/serve32.log"
tar czf "$OUT/logs.tgz" -C "$R" . && rm -rf "$R"
