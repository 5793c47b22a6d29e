#!/usr/bin/env bash
# Device call (session 6, second): the offline workloads at BENCHMARKS.md's full prompt counts
# (offline-1k: 1000 prompts, offline-128: 5000) with the HF batch-64 baseline, each against the
# limit model and the new serial floor (matmuls, then attention) in the same call.
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
timeout 540 tenon bench offline --model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 \
    --served-model-name llama-3.1-8b --num-prompts 1000 5000 --hf-baseline --hf-num-iters 1 \
    --output-json "$OUT/offline-full.json" >"$OUT/offline-full.log" 2>&1
echo "rc $?"
grep -iE 'offline-|hf-|copy|preempt|workload|---' "$OUT/offline-full.log" | cut -c1-200
python3 - "$OUT/offline-full.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])):
    lim = r.get("limit") or {}
    print(r["workload"], r.get("name"), r.get("num_prompts", r.get("batch_size")), round(r["value"], 1),
          lim.get("value"), r.get("fraction_of_limit"), (lim.get("serial") or {}).get("value"),
          r.get("fraction_of_serial_limit"), r["baseline"].get("ratio"), r.get("elapsed_s"))
PY
