#!/usr/bin/env bash
# Device call (session 5, third): the platform's batch defaults (1024 sequences, 16384 tokens a
# step offline on a card of 70 GiB or more; decode graphs up to 512) with the HF batch-64
# baseline; the same with graphs up to 1024; the old defaults (256 / 8192, graphs up to 256);
# a step timeline of offline-128 on the new defaults with graphs up to 1024.
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
R=$OUT/r; mkdir -p "$R"
BASE="--model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 --served-model-name llama-3.1-8b"
TO1024="1 2 4 8 $(seq -s ' ' 16 16 256) $(seq -s ' ' 288 32 512) $(seq -s ' ' 576 64 1024)"
run() {  # name, timeout, flags...
    local name=$1 limit=$2; shift 2
    timeout "$limit" tenon bench offline $BASE "$@" --num-prompts 200 1000 \
        --output-json "$R/offline-$name.json" >"$R/offline-$name.log" 2>&1
    echo "== offline $name: $(grep -E 'offline-|hf-|copy|batch limits|captured' "$R/offline-$name.log" | cut -c1-160 | tr '\n' '|')"
}
run new 200 --hf-baseline --hf-num-iters 1
run new-graphs1024 110 --cuda-graph-sizes $TO1024
run old 110 --max-num-seqs 256 --max-num-batched-tokens 8192 --cuda-graph-sizes 1 2 4 8 $(seq -s ' ' 16 16 256)
timeout 90 python3 benchmarks/diagnostics/step_timeline.py 1000 128 128 "cuda_graph_sizes=$TO1024" >"$R/timeline-128-new1024.txt" 2>&1
grep -A14 "== warm" "$R/timeline-128-new1024.txt" | cut -c1-130
tar czf "$OUT/logs.tgz" -C "$R" . && rm -rf "$R"
