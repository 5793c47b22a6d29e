#!/usr/bin/env bash
# Device call (session 3): where a decode-1 step goes now (async scheduling, GEMV), and the
# gpu tests outside tests/backends (kv tiers on CUDA, ops, sampling, prefix bench).
. benchmarks/gpu_setup.sh || exit 1
timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider tests/plugins/kv_tiers tests/core/sampling \
    tests/core/bench/test_prefix_cache.py tests/plugins/ops/test_triton_ops_on_cuda.py >"$OUT/gpu-tests-2.log" 2>&1
echo "gpu tests: $(tail -1 "$OUT/gpu-tests-2.log")"; grep -E "^(FAILED|ERROR)" "$OUT/gpu-tests-2.log" | head -8
timeout 200 python3 benchmarks/diagnostics/decode_breakdown.py --steps 128 >"$OUT/breakdown.txt" 2>&1
grep -A3 "== decode step" "$OUT/breakdown.txt"; grep -A40 "== kernels over" "$OUT/breakdown.txt" | cut -c1-70,170-260
