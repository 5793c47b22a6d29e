#!/usr/bin/env bash
# Device call (session 4): the rotating decode launch compiled without fused multiply-adds: the
# fused-rotary gpu cases (cache bit for bit against rotating first).
. benchmarks/gpu_setup.sh || exit 1
timeout 100 python3 -m pytest -q -m gpu -p no:cacheprovider tests/plugins/attention/triton_paged/test_triton_fused_rotary.py 2>&1 | grep -E "passed|failed|^E " | head -12
