#!/usr/bin/env bash
# Device call (session 3, third): step timelines, cold then warm, of offline-128 (512 prompts)
# and offline-1k (200 prompts) shapes, with Triton compiles logged.
. benchmarks/gpu_setup.sh || exit 1
timeout 150 python3 benchmarks/diagnostics/step_timeline.py 512 128 128 2>&1 | grep -v Warning | tee "$OUT/timeline-128.txt" | cut -c1-400
timeout 300 python3 benchmarks/diagnostics/step_timeline.py 200 1000 1000 2>&1 | grep -v Warning | tee "$OUT/timeline-1k.txt" | cut -c1-400
