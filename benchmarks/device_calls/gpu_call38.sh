#!/usr/bin/env bash
# Device call (session 6, sixth): the start-up heap frozen out of the garbage collector's way,
# A/B on offline-128 at its full 5000 prompts (the freeze patched out in the first run), then the
# final records: offline-1k (1000 prompts) and offline-128 (5000) with the HF batch-64 baseline.
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
ARGS="--model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 --served-model-name llama-3.1-8b"
timeout 150 python3 -c "
import sys, tenon.startup.heap as heap
heap.freeze_startup_objects = lambda: 0  # the A side: nothing frozen
from tenon.cli.main import main
main(sys.argv[1:])" bench offline $ARGS --workload offline-128 --num-prompts 5000 \
    --output-json "$OUT/offline-128-nofreeze.json" >"$OUT/offline-128-nofreeze.log" 2>&1
echo "no freeze (rc $?): $(grep -E '^  offline-128' "$OUT/offline-128-nofreeze.log")"
timeout 400 tenon bench offline $ARGS --num-prompts 1000 5000 --hf-baseline --hf-num-iters 1 \
    --output-json "$OUT/offline-final.json" >"$OUT/offline-final.log" 2>&1
echo "final (rc $?):"; grep -E '^  (offline|hf-)|copy band' "$OUT/offline-final.log"
