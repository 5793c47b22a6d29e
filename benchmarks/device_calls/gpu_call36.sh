#!/usr/bin/env bash
# Device call (session 6, fourth): the step timeline of offline-128 at its full 5000 prompts
# (where do batch-1000 decode steps lose 4 ms over their kernels?), and batched decode attention
# at short contexts (batch 512 / 1000, 128 and 256 keys: offline-128's decode) per tile and split.
. benchmarks/gpu_setup.sh || exit 1
timeout 200 python3 benchmarks/diagnostics/step_timeline.py 5000 128 128 >"$OUT/timeline-128-full.txt" 2>&1
grep -vE "Warning|^tenon:" "$OUT/timeline-128-full.txt" | cut -c1-600
timeout 220 python3 benchmarks/diagnostics/decode_batch_sweep.py --context-lens 128 256 --batch-sizes 512 1000 \
    >"$OUT/decode-short-sweep.txt" 2>&1
grep -E "^==|^ +(128|256) " "$OUT/decode-short-sweep.txt" | head -80
