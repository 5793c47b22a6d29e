#!/usr/bin/env bash
# Device call (session 6, seventh): the CPU suite on torch 2.11 (in the background, no GPU),
# the CUDA engine suite, and the layer matmuls' time per row count (gemm_m_sweep.py: are some
# decode graph sizes slower than a larger one?).
. benchmarks/gpu_setup.sh || exit 1
(CUDA_VISIBLE_DEVICES= OMP_NUM_THREADS=4 nice -n 19 timeout 500 python3 -m pytest -q -m "not gpu" \
    -p no:cacheprovider >"$OUT/cpu-suite-torch211.log" 2>&1) &
suite=$!
timeout 120 python3 benchmarks/diagnostics/gemm_m_sweep.py 16 1024 16 >"$OUT/gemm-m-sweep.txt" 2>&1
cat "$OUT/gemm-m-sweep.txt" | grep -v Warning
timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider tests/backends/cuda/test_engine_on_cuda.py >"$OUT/gpu-engine-tests.log" 2>&1
echo "gpu engine tests: $(tail -1 "$OUT/gpu-engine-tests.log")"; grep -E "^(FAILED|ERROR)" "$OUT/gpu-engine-tests.log" | head -8
wait $suite; echo "cpu suite (torch $(python3 -c 'import torch; print(torch.__version__)')): $(tail -1 "$OUT/cpu-suite-torch211.log")"
grep -E "^(FAILED|ERROR)" "$OUT/cpu-suite-torch211.log" | head -10
