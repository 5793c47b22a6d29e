#!/usr/bin/env bash
# Device call (session 4): decode attention with fewer memory round trips (indices in one load,
# K and V of a tile together, the next tile's pages prefetched). decode-1 latency A/B in one
# call: before this session (ab_old/), the new tree with PDL off, PDL with early trigger, PDL
# waiting only (ab_late/); the attention microbenchmark at three MIN_KEYS_PER_SPLIT values; the
# attention gpu suite.
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
R=$OUT/r; mkdir -p "$R"
mkdir -p /tmp/new && cp -r plugins /tmp/new/
lat() {  # label, env value
    TENON_DEPENDENT_LAUNCH=$2 timeout 80 tenon bench latency --model $M --load-format dummy \
        --dtype bfloat16 --max-model-len 4096 --input-len 128 --output-len 256 --num-iters 5 \
        --output-json "$R/latency-$1.json" >"$R/latency-$1.log" 2>&1
    echo "$1: $(grep -v '^tenon:' "$R/latency-$1.log" | grep -iE 'TPOT' | tail -1 | cut -c1-120)"
}
for round in 1 2; do
    cp -r ab_old/plugins/. plugins/; lat old$round 1
    cp -r /tmp/new/plugins/. plugins/; lat off$round 0; lat early$round 1
    cp -r ab_late/plugins/. plugins/; lat late$round 1
    cp -r /tmp/new/plugins/. plugins/
done
for keys in 64 128 256; do
    TENON_DEPENDENT_LAUNCH=0 timeout 60 python3 -c "
import sys
from tenon.plugins.attention.triton_paged import decode_kernel
decode_kernel.MIN_KEYS_PER_SPLIT = $keys
from tenon.cli.main import main
sys.exit(main(['bench', 'attention', '--attention-backend', 'triton', '--context-lens', '256', '512', '1024', '4096', '32768', '--batch-sizes', '1', '64', '--max-model-len', '32768']))
" >"$R/attention-$keys.log" 2>&1
    echo "== MIN_KEYS_PER_SPLIT $keys"; grep -v '^tenon:' "$R/attention-$keys.log" | grep -E "^ +[0-9]" | awk '{print "  "$1" x "$2": "$4" us, "$6}'
done
timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider tests/plugins/attention >"$R/gpu-attention-tests.log" 2>&1
echo "gpu attention tests: $(tail -1 "$R/gpu-attention-tests.log")"; grep -E "^(FAILED|ERROR)" "$R/gpu-attention-tests.log" | head -8
tar czf "$OUT/logs.tgz" -C "$R" . && rm -rf "$R"
