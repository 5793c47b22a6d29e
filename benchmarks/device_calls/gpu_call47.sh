#!/usr/bin/env bash
# Device call (session 7, sixth): the pruned decode graph sizes kept on disk. The CUDA engine
# suite (a second start-up must capture the cached sizes without timing and give the same
# tokens), then start-up cold (empty Triton, bytecode and graph-size caches) and warm (all
# three warm), and a third start with only the graph-size cache empty (what pruning costs).
. benchmarks/gpu_setup.sh || exit 1
timeout 180 python3 -m pytest -q -m gpu -p no:cacheprovider tests/backends/cuda/test_engine_on_cuda.py >"$OUT/gpu-engine-tests.log" 2>&1
echo "gpu engine tests: $(tail -1 "$OUT/gpu-engine-tests.log")"; grep -E "^(FAILED|ERROR)|^E " "$OUT/gpu-engine-tests.log" | head -8
export TENON_CACHE_DIR=/tmp/tenon-cache-startup
rm -rf "$TENON_CACHE_DIR"
bash benchmarks/startup_cold_warm.sh "$OUT"
TENON_CACHE_DIR=/tmp/tenon-cache-empty TRITON_CACHE_DIR=/tmp/startup-triton-cache PYTHONPYCACHEPREFIX=/tmp/startup-pycache \
    timeout 150 tenon bench startup --model benchmarks/configs/llama-3.1-8b --load-format dummy --dtype bfloat16 \
    --max-model-len 4096 --num-starts 1 --output-json "$OUT/startup-warm-no-size-cache.json" >"$OUT/startup-warm-no-size-cache.log" 2>&1
for run in cold warm warm-no-size-cache; do
    python3 -c "import json,sys; t=json.load(open(sys.argv[1]))['starts'][0]; print(sys.argv[2], json.dumps(t)[:400])" \
        "$OUT/startup-$run.json" "$run"
done
grep -hE "graph sizes|dropped" "$OUT"/startup-*.log | cut -c1-200 | head -6
