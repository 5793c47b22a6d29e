#!/usr/bin/env bash
# Device call (session 4): decode-1 latency A/B/C in one call: the kernels before PDL (ab_old/,
# HEAD~1 of the PDL commit), the new kernels with PDL off, and on; alternating, 3 rounds. Then
# the fixed PDL chain test and a step timeline of an offline-128-shaped batch.
. benchmarks/gpu_setup.sh || exit 1
M=benchmarks/configs/llama-3.1-8b
R=$OUT/r; mkdir -p "$R"
mkdir -p /tmp/new && cp -r plugins /tmp/new/
lat() {  # label, env value
    TENON_DEPENDENT_LAUNCH=$2 timeout 80 tenon bench latency --model $M --load-format dummy \
        --dtype bfloat16 --max-model-len 4096 --input-len 128 --output-len 256 --num-iters 5 \
        --output-json "$R/latency-$1.json" >"$R/latency-$1.log" 2>&1
    echo "$1: $(grep -v '^tenon:' "$R/latency-$1.log" | grep -iE 'tok/s|TPOT' | tail -2 | tr '\n' ' ' | cut -c1-250)"
}
for round in 1 2 3; do
    cp -r ab_old/plugins/. plugins/; lat old$round 1
    cp -r /tmp/new/plugins/. plugins/; lat off$round 0; lat on$round 1
done
timeout 100 python3 -m pytest -q -m gpu -p no:cacheprovider tests/plugins/triton_support >"$R/pdl-test.log" 2>&1
echo "pdl tests: $(tail -1 "$R/pdl-test.log")"; grep -E "^(FAILED|ERROR)|Error" "$R/pdl-test.log" | head -5
cd benchmarks/diagnostics && timeout 150 python3 step_timeline.py 512 128 128 >"$R/timeline-128.log" 2>&1; cd ../..
grep -v '^tenon:' "$R/timeline-128.log" | tail -14 | cut -c1-200
tar czf "$OUT/logs.tgz" -C "$R" . && rm -rf "$R"
