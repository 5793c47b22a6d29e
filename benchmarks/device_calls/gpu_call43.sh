#!/usr/bin/env bash
# Device call (session 7, second): does the card hold its matmul rate under sustained load
# (matmul_sustained.py), and what takes the host ~43 ms every ~10 decode steps at 1000 requests
# (host_pauses.py: per-step host phases and garbage collections).
. benchmarks/gpu_setup.sh || exit 1
D=benchmarks/diagnostics
timeout 120 python3 $D/matmul_sustained.py 4 >"$OUT/matmul-sustained.txt" 2>&1; echo "sustained (rc $?)"; cat "$OUT/matmul-sustained.txt"
timeout 150 python3 $D/host_pauses.py 1000 128 96 >"$OUT/host-pauses-1000x128.txt" 2>&1
echo "host pauses (rc $?):"; head -40 "$OUT/host-pauses-1000x128.txt" | cut -c1-220
