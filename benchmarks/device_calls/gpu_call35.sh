#!/usr/bin/env bash
# Device call (session 6, third): KV reservation at admission on offline-1k at its full 1000
# prompts, A/B in one call (--schedule-conservativeness 0: vLLM's admit-then-preempt; default 1),
# and the step timeline of offline-128 at its full 5000 prompts (where do its steps lose time?).
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
for c in 0 1; do
    timeout 230 tenon bench offline --model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 \
        --served-model-name llama-3.1-8b --workload offline-1k --num-prompts 1000 --schedule-conservativeness $c \
        --output-json "$OUT/offline-1k-c$c.json" >"$OUT/offline-1k-c$c.log" 2>&1
    echo "conservativeness $c (rc $?): $(grep -E '^  offline-1k' "$OUT/offline-1k-c$c.log")"
done
cd benchmarks/diagnostics
timeout 200 python3 step_timeline.py 5000 128 128 max_model_len=4096 >"$OUT/timeline-128-full.txt" 2>&1
grep -vE "Warning|^tenon:" "$OUT/timeline-128-full.txt" | cut -c1-400
