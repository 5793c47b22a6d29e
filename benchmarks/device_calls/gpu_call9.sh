#!/usr/bin/env bash
# Device call (session 3): asynchronous scheduling, transformers-free config and the Triton
# specialisation fix on the H200: gpu tests (engine suite, async vs sync on CUDA), decode-1
# with HF in the same call, cold and warm start-up, offline-1k/offline-128 with the HF batch-64
# baseline; the CPU suite on this machine's torch in the background.
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
(CUDA_VISIBLE_DEVICES= OMP_NUM_THREADS=4 nice -n 19 timeout 520 python3 -m pytest -q -m "not gpu" \
    -p no:cacheprovider >"$OUT/cpu-suite-torch211.log" 2>&1) &
suite=$!
timeout 120 python3 -m pytest -q -m gpu -p no:cacheprovider --maxfail=10 tests/backends/cuda \
    >"$OUT/gpu-tests.log" 2>&1
echo "gpu tests: $(tail -1 "$OUT/gpu-tests.log")"; grep -E "^(FAILED|ERROR)|Error" "$OUT/gpu-tests.log" | head -8
timeout 40 python3 -m pytest -q -p no:cacheprovider tests/plugins/loaders/test_hf_config.py >"$OUT/hf-config.log" 2>&1
echo "hf config (transformers $(python3 -c 'import transformers; print(transformers.__version__)')): $(tail -1 "$OUT/hf-config.log")"
timeout 150 tenon bench decode1-report --model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 \
    --no-eager-comparison --output-json "$OUT/decode-1.json" >"$OUT/decode1.log" 2>&1
grep -v '^tenon:' "$OUT/decode1.log" | tail -8
bash benchmarks/startup_cold_warm.sh "$OUT" 2>&1 | cut -c1-700
timeout 200 tenon bench offline --model $M --load-format dummy --dtype bfloat16 --max-model-len 4096 \
    --served-model-name llama-3.1-8b --num-prompts 200 1000 --hf-baseline --hf-num-iters 1 \
    --output-json "$OUT/offline.json" >"$OUT/offline.log" 2>&1
grep -v '^tenon:' "$OUT/offline.log" | tail -12
wait $suite; echo "cpu suite (torch $(python3 -c 'import torch; print(torch.__version__)')): $(tail -1 "$OUT/cpu-suite-torch211.log")"
grep -E "^(FAILED|ERROR)" "$OUT/cpu-suite-torch211.log" | head -8
