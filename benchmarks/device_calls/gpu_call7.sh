#!/usr/bin/env bash
# Device call (session 3, second): GPU busy time and kernel breakdown of one offline-128 wave
# (256 x 128/128) and of a mixed chunked-prefill run (64 x 1000/200).
. benchmarks/gpu_setup.sh || exit 1
timeout 200 python3 benchmarks/diagnostics/offline_trace.py 256 128 128 >"$OUT/trace-128.txt" 2>&1
head -40 "$OUT/trace-128.txt" | cut -c1-200
timeout 200 python3 benchmarks/diagnostics/offline_trace.py 64 1000 200 >"$OUT/trace-1k.txt" 2>&1
head -40 "$OUT/trace-1k.txt" | cut -c1-200
