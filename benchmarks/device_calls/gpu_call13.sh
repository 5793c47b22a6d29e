#!/usr/bin/env bash
# Device call (session 3): keys per decode split at batch 1 (attention alone and decode-1), and
# the CPU suite on this machine's torch 2.11 / Triton 3.6 in the background.
. benchmarks/gpu_setup.sh || exit 1
(CUDA_VISIBLE_DEVICES= OMP_NUM_THREADS=4 nice -n 19 timeout 500 python3 -m pytest -q -m "not gpu" \
    -p no:cacheprovider >"$OUT/cpu-suite-torch211.log" 2>&1) &
suite=$!
timeout 400 python3 benchmarks/diagnostics/decode_split_sweep.py 128 512 2048 >"$OUT/split-sweep.txt" 2>&1
grep -E "^==|^  (256|512|1024|4096) |output tok/s|tok/s" "$OUT/split-sweep.txt" | grep -v "^tenon:" | cut -c1-160
wait $suite; echo "cpu suite (torch $(python3 -c 'import torch; print(torch.__version__)'), triton $(python3 -c 'import triton; print(triton.__version__)')): $(tail -1 "$OUT/cpu-suite-torch211.log")"
grep -E "^(FAILED|ERROR)" "$OUT/cpu-suite-torch211.log" | head -8
