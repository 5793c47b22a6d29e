#!/usr/bin/env bash
# Device call (session 5, second): the wide GEMV launches in bf16; host time against device
# waits per step for offline-128 (1000 prompts) with today's defaults and with 1024 sequences /
# 16384 tokens a step; kernel time by kind for the HF batch-64 shape and an offline-1k-like
# batch (200 x 1000 in, 64 out: its prefill and decode at batch 200).
. benchmarks/gpu_setup.sh || exit 1
R=$OUT/r; mkdir -p "$R"
timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider tests/plugins/ops/test_gemv_on_cuda.py >"$R/gpu-gemv-tests.log" 2>&1
echo "gpu gemv tests: $(tail -1 "$R/gpu-gemv-tests.log")"; grep -E "^(FAILED|ERROR)" "$R/gpu-gemv-tests.log" | head -8
D=benchmarks/diagnostics
timeout 90 python3 $D/step_timeline.py 1000 128 128 >"$R/timeline-128-default.txt" 2>&1
grep -A14 "== warm" "$R/timeline-128-default.txt" | cut -c1-130
timeout 90 python3 $D/step_timeline.py 1000 128 128 max_num_seqs=1024 max_num_batched_tokens=16384 >"$R/timeline-128-large.txt" 2>&1
grep -A14 "== warm" "$R/timeline-128-large.txt" | cut -c1-130
timeout 90 python3 $D/offline_trace.py 64 512 256 >"$R/trace-64.txt" 2>&1
grep -B1 -A14 "under the profiler" "$R/trace-64.txt" | cut -c1-100
timeout 150 python3 $D/offline_trace.py 200 1000 64 >"$R/trace-1k.txt" 2>&1
grep -B1 -A14 "under the profiler" "$R/trace-1k.txt" | cut -c1-100
tar czf "$OUT/logs.tgz" -C "$R" . && rm -rf "$R"
