#!/usr/bin/env bash
# Device call (session 3, first): prefix-8k after the CPU tier's non-blocking wait, where an
# offline-128-style run spends its time (cProfile), and the TTFT probe with and without graphs.
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
timeout 150 tenon bench prefix --model $M --load-format dummy --dtype bfloat16 --max-model-len 16384 \
    --kv-offloading-size 8 --output-json "$OUT/prefix-8k.json" >"$OUT/prefix.log" 2>&1
grep -v '^tenon:' "$OUT/prefix.log" | tail -12
timeout 200 python3 benchmarks/diagnostics/offline_profile.py 512 128 128 >"$OUT/offline-profile.txt" 2>&1
head -3 "$OUT/offline-profile.txt"; grep -E "tolist|replay|forward|schedule|update_from|fill|execute" "$OUT/offline-profile.txt" | head -30
timeout 150 python3 benchmarks/diagnostics/prefill_probe.py >"$OUT/prefill-probe.txt" 2>&1
grep -E "enforce_eager" "$OUT/prefill-probe.txt"
