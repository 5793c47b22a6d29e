#!/usr/bin/env bash
# Device call (session 5, seventh): serve-32 on the final tree (the server now starts with the
# platform's serving defaults, graphs up to 1024 and the prefill warm-up; both runs pinned to
# 32 sequences and 8192 tokens a step).
. benchmarks/gpu_setup.sh || exit 1
OUTPUT_JSON=$OUT/serve-32-gpu.json timeout 400 bash benchmarks/run_serve32_gpu.sh >"$OUT/serve32.log" 2>&1
tail -12 "$OUT/serve32.log" | cut -c1-220
