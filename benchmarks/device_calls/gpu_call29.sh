#!/usr/bin/env bash
# Device call (session 5, sixth): start-up cold and warm on the final tree (graphs up to 1024 and
# the prefill warm-up are new start-up work), then a sweep of batched decode attention (split
# count and pipelined tile at batch 64 and 200, short contexts) for the next session.
. benchmarks/gpu_setup.sh || exit 1
R=$OUT/r; mkdir -p "$R"
bash benchmarks/startup_cold_warm.sh "$R" 2>&1 | cut -c1-700
timeout 220 python3 benchmarks/diagnostics/decode_batch_sweep.py >"$R/decode-batch-sweep.txt" 2>&1
grep -E "^==|^  (512|1024|2048) " "$R/decode-batch-sweep.txt" | cut -c1-100
cp "$R"/startup-*.json "$OUT/" 2>/dev/null
tar czf "$OUT/logs.tgz" -C "$R" . && rm -rf "$R"
