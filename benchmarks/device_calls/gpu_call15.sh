#!/usr/bin/env bash
# Device call (session 3): launch sweep of the one-token GEMVs as decode-1 runs them (fused norm
# on qkv and gate_up, fused SiLU on down, plain on o_proj). As run, the diagnostic also patched
# the best launches in and timed decode-1's shape with them (227.4 tok/s, the same as the
# existing launches); that option was dropped since no launch was worth a table change.
. benchmarks/gpu_setup.sh || exit 1
timeout 330 python3 benchmarks/diagnostics/fused_gemv_sweep.py >"$OUT/fused-gemv-sweep.txt" 2>&1
grep -v "^tenon:" "$OUT/fused-gemv-sweep.txt" | grep -E " us |tok/s|Error" | cut -c1-160
