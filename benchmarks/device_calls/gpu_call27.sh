#!/usr/bin/env bash
# Device call (session 5, fourth): the tree with platform batch defaults, graphs up to 1024,
# the start-up warm-up and strided q/k/v for the rotating decode kernel. The CUDA engine suite
# and the fused-rotary cases; offline-1k (200 prompts) / offline-128 (1000) with the HF batch-64
# baseline; a step timeline of offline-1k.
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
R=$OUT/r; mkdir -p "$R"
timeout 240 python3 -m pytest -q -m gpu -p no:cacheprovider tests/backends/cuda/test_engine_on_cuda.py \
    tests/plugins/attention/triton_paged/test_triton_fused_rotary.py >"$R/gpu-tests.log" 2>&1
echo "gpu tests: $(tail -1 "$R/gpu-tests.log")"; grep -E "^(FAILED|ERROR)" "$R/gpu-tests.log" | head -8
timeout 240 tenon bench offline --model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 \
    --served-model-name llama-3.1-8b --num-prompts 200 1000 --hf-baseline --hf-num-iters 1 \
    --output-json "$OUT/offline.json" >"$R/offline.log" 2>&1
grep -E 'offline-|hf-|copy|batch limits|captured|warmed|ready' "$R/offline.log" | cut -c1-200
timeout 100 python3 benchmarks/diagnostics/step_timeline.py 200 1000 1000 >"$R/timeline-1k.txt" 2>&1
grep -A16 "== warm" "$R/timeline-1k.txt" | cut -c1-140
tar czf "$OUT/logs.tgz" -C "$R" . && rm -rf "$R"
