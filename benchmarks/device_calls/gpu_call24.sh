#!/usr/bin/env bash
# Device call (session 5, first): where batched throughput is lost. The GEMV's dot kernel at
# 32 / 64 / 128 tokens against cuBLAS; offline with today's defaults (256 sequences, 8192
# tokens a step), with vLLM's large-GPU defaults (1024 / 16384), and with those plus decode
# graphs up to 512; a step timeline of the HF batch-64 shape.
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
R=$OUT/r; mkdir -p "$R"
BASE="--model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 --served-model-name llama-3.1-8b"
timeout 200 python3 benchmarks/diagnostics/gemv_vs_cublas.py --tokens 32,64,128 >"$R/gemv-wide.txt" 2>&1
grep -E "^(==|qkv|o_proj|gate_up|down|lm_head) |beats|total" "$R/gemv-wide.txt" | grep -v "^==" | cut -c1-90
timeout 60 python3 benchmarks/diagnostics/step_timeline.py 64 512 256 >"$R/timeline-64.txt" 2>&1
grep -A12 "== warm" "$R/timeline-64.txt" | cut -c1-150
for variant in "default|" "large|--max-num-seqs 1024 --max-num-batched-tokens 16384" \
    "large-graphs512|--max-num-seqs 1024 --max-num-batched-tokens 16384 --cuda-graph-sizes 1 2 4 8 $(seq -s ' ' 16 16 512)"; do
    name=${variant%%|*}; flags=${variant#*|}
    timeout 110 tenon bench offline $BASE $flags --num-prompts 200 1000 \
        --output-json "$R/offline-$name.json" >"$R/offline-$name.log" 2>&1
    echo "== offline $name: $(grep -v '^tenon:' "$R/offline-$name.log" | grep -E "offline-|copy" | tr '\n' ' ' | cut -c1-400)"
done
tar czf "$OUT/logs.tgz" -C "$R" . && rm -rf "$R"
