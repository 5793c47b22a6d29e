#!/usr/bin/env bash
# Device call: serve-32 on the GPU, prefix-8k from the CPU tier, the bf16 engine test, and the
# CPU suite on this machine's torch (GPUs hidden) in the background on a few cores.
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
(OMP_NUM_THREADS=4 nice -n 19 timeout 420 python3 -m pytest -q -m "not gpu" -p no:cacheprovider \
    -x >"$OUT/cpu-suite-torch211.log" 2>&1) &
suite=$!
OUTPUT_JSON=$OUT/serve-32-gpu.json timeout 230 bash benchmarks/run_serve32_gpu.sh >"$OUT/serve32.log" 2>&1
tail -5 "$OUT/serve32.log"
timeout 150 tenon bench prefix --model $M --load-format dummy --dtype bfloat16 --max-model-len 16384 \
    --kv-offloading-size 8 --output-json "$OUT/prefix-8k.json" >"$OUT/prefix.log" 2>&1
grep -v '^tenon:' "$OUT/prefix.log" | tail -10
timeout 60 python3 -m pytest -q -m gpu -p no:cacheprovider tests/backends/cuda -k bfloat16 \
    >"$OUT/gpu-bf16.log" 2>&1; echo "bf16 tests: $(tail -1 "$OUT/gpu-bf16.log")"
wait $suite; echo "cpu suite (torch $(python3 -c 'import torch; print(torch.__version__)')): $(tail -1 "$OUT/cpu-suite-torch211.log")"
grep -E "^(FAILED|ERROR)" "$OUT/cpu-suite-torch211.log" | head -5
