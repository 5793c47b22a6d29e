#!/usr/bin/env bash
# Device call (session 7, first): graph-pruning A/B (gpu_call41: offline-1k, 500 prompts, the
# 5th session's explicit graph sizes against the pruned default), then where a prefill-only
# offline-128 batch spends its kernel time (1024 x 128 in, 1 out: eight 16384-token steps) and
# whether 1000-request decode steps still leave the device idle after gc.freeze.
. benchmarks/gpu_setup.sh || exit 1
bash benchmarks/device_calls/gpu_call41.sh 2>&1 | grep -v "^NVIDIA"
D=benchmarks/diagnostics
timeout 120 python3 $D/offline_trace.py 1024 128 1 max_model_len=4096 >"$OUT/trace-prefill-1024x128.txt" 2>&1
echo "prefill trace (rc $?):"; grep -E "profiler|^  [a-z]" "$OUT/trace-prefill-1024x128.txt" | head -14
grep -E "nvjet|gemm|cutlass|_kernel" "$OUT/trace-prefill-1024x128.txt" | head -14 | cut -c1-70,150-200
timeout 120 python3 $D/gpu_gaps.py 1000 128 24 20 max_model_len=4096 >"$OUT/gaps-1000-128.txt" 2>&1
echo "gaps (rc $?):"; grep -A4 "device busy" "$OUT/gaps-1000-128.txt" | cut -c1-160
