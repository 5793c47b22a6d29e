#!/usr/bin/env bash
# Start-up to ready on the 8B dummy model, phase by phase: a cold start (empty Triton kernel
# cache and bytecode cache, first process on the machine) and a warm one (a second process
# reusing both). Each start is its own process; the JSON records hold the phases and the wall
# time of LLM(...), the process total is printed beside them.
# Usage (repo root, device machine, after benchmarks/gpu_setup.sh): bash benchmarks/startup_cold_warm.sh OUT_DIR
set -u
out=${1:-/tmp/out}
mkdir -p "$out"
export TRITON_CACHE_DIR=/tmp/startup-triton-cache PYTHONPYCACHEPREFIX=/tmp/startup-pycache
rm -rf "$TRITON_CACHE_DIR" "$PYTHONPYCACHEPREFIX"
for start in cold warm; do
    begin=$(date +%s.%N)
    timeout 150 tenon bench startup --model benchmarks/configs/llama-3.1-8b --load-format dummy \
        --dtype bfloat16 --max-model-len 4096 --num-starts 1 --output-json "$out/startup-$start.json" \
        >"$out/startup-$start.log" 2>&1
    end=$(date +%s.%N)
    python3 - "$out/startup-$start.json" "$start" "$begin" "$end" <<'PY'
import json, sys
path, start, begin, end = sys.argv[1:]
record = json.load(open(path))
timing = record["starts"][0]
print(start, "process", round(float(end) - float(begin), 1), "s;", json.dumps(timing)[:600])
PY
done
