#!/usr/bin/env bash
# serve-32 (BENCHMARKS.md) on the CPU with the default model, against offline throughput on the
# same shapes and engine flags, in one run:
#   1. `tenon serve` on 127.0.0.1; a warm-up request as the offline run's (the first prompt, 4
#      tokens, so both have that prompt in the prefix cache); then `tenon bench serve` (1024 in /
#      128 out, concurrency 32, ignore_eos); the server is stopped afterwards;
#   2. `tenon bench throughput` (the offline `LLM`) on the same shapes, with the cores to itself;
#   3. one JSON record: value = server output tok/s, baseline = offline output tok/s, the ratio,
#      TTFT/TPOT p50/p99.
# BENCHMARKS.md asks for 200 prompts; on the 2-core CPU the default is fewer (NUM_PROMPTS), with
# the same shapes and concurrency, and the record says so.
#
# On a shared machine wall time measures the neighbours as much as the engine, so the record also
# holds CPU seconds: the server's (frontend and engine-core processes over the timed bench) and
# the offline run's (its timed part), and the load average.
#
# Environment: NUM_PROMPTS (default 32: every request in flight at once), PORT (default: a free
# one), ENGINE_FLAGS (default "--max-num-seqs 32", so the offline run batches as the server
# does), THREADS (torch threads of both engines, default 1: with 2 threads on 2 busy cores every
# parallel region waits for a preempted thread, measured 3x to 10x slower decode here; empty for
# torch's default), OUTPUT_JSON (default benchmarks/results/serve-32-cpu.json), TENON (default
# .venv/bin/tenon).
set -euo pipefail
cd "$(dirname "$0")/.."

TENON=${TENON:-.venv/bin/tenon}
PYTHON=$(dirname "$TENON")/python
NUM_PROMPTS=${NUM_PROMPTS:-32}
ENGINE_FLAGS=${ENGINE_FLAGS:---max-num-seqs 32}
THREADS=${THREADS-1}
if [ -n "$THREADS" ]; then
    export OMP_NUM_THREADS=$THREADS
fi
OUTPUT_JSON=${OUTPUT_JSON:-benchmarks/results/serve-32-cpu.json}
INPUT_LEN=1024
OUTPUT_LEN=128
CONCURRENCY=32
HEALTH_TIMEOUT_S=600
# shellcheck source=benchmarks/serve_lifecycle.sh
. benchmarks/serve_lifecycle.sh

server_cpu_s() {  # user + system seconds of the server and its children (the engine core)
    local ticks=0 pid
    for pid in "$server_pid" $(pgrep -P "$server_pid"); do
        if [ -r "/proc/$pid/stat" ]; then
            # Fields 14 and 15 after the ")" that closes the command name.
            ticks=$((ticks + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')))
        fi
    done
    echo "$ticks $(getconf CLK_TCK)" | awk '{print $1 / $2}'
}
load_average() { cut -d' ' -f1 /proc/loadavg; }

# shellcheck disable=SC2086  # ENGINE_FLAGS is a list of flags
start_server $ENGINE_FLAGS

"$TENON" bench serve --base-url "$BASE_URL" --random-input-len "$INPUT_LEN" \
    --random-output-len 4 --num-prompts 1 --ignore-eos --disable-tqdm >/dev/null
serve_cpu_start_s=$(server_cpu_s)
serve_load_start=$(load_average)
"$TENON" bench serve --base-url "$BASE_URL" --random-input-len "$INPUT_LEN" \
    --random-output-len "$OUTPUT_LEN" --max-concurrency "$CONCURRENCY" \
    --num-prompts "$NUM_PROMPTS" --ignore-eos --disable-tqdm \
    --workload serve-32 --card cpu --output-json "$work_dir/serve.json"
serve_cpu_s=$(awk -v end="$(server_cpu_s)" -v start="$serve_cpu_start_s" 'BEGIN {print end - start}')
serve_load_end=$(load_average)
stop_server
offline_load_start=$(load_average)

# shellcheck disable=SC2086
"$TENON" bench throughput --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" \
    --num-prompts "$NUM_PROMPTS" $ENGINE_FLAGS --output-json "$work_dir/offline.json"
offline_load_end=$(load_average)

"$PYTHON" - "$work_dir/serve.json" "$work_dir/offline.json" "$OUTPUT_JSON" \
    "$NUM_PROMPTS" "$ENGINE_FLAGS" "$CONCURRENCY" "$serve_cpu_s" \
    "$serve_load_start $serve_load_end $offline_load_start $offline_load_end" <<'EOF'
import json
import sys

import torch

(serve_path, offline_path, output_path, num_prompts, engine_flags, concurrency, serve_cpu_s,
 loads) = sys.argv[1:]
serve = json.load(open(serve_path))
offline = json.load(open(offline_path))
server_tok_s = serve["output_tokens_per_s"]
offline_tok_s = offline["output_tokens_per_s"]
server_tok_per_cpu_s = serve["total_output_tokens"] / float(serve_cpu_s)
offline_tok_per_cpu_s = offline["output_tokens_per_s"] * offline["elapsed_s"] / offline["cpu_s"]
load = [float(value) for value in loads.split()]
config = serve["config"]
record = {
    "workload": "serve-32",
    "model": serve["model"],
    "card": "cpu",
    "versions": serve["versions"],
    "value": round(server_tok_s, 3),
    "unit": "output tokens/s",
    "baseline": {
        "name": "tenon bench throughput (offline LLM), same shapes and engine flags, same run",
        "value": round(offline_tok_s, 3),
        "ratio": round(server_tok_s / offline_tok_s, 4),
    },
    "limit": None,
    "fraction_of_limit": None,
    "date": serve["date"],
    "num_prompts": int(num_prompts),
    "note": (f"reduced prompt count: {num_prompts} prompts instead of BENCHMARKS.md's 200, same "
             f"shapes ({config['random_input_len']} in / {config['random_output_len']} out, "
             f"ignore_eos) and concurrency {concurrency}, because the 2-core CPU is slow"),
    "input_len": config["random_input_len"],
    "output_len": config["random_output_len"],
    "concurrency": int(concurrency),
    "engine_flags": engine_flags,
    "threads": torch.get_num_threads(),
    "cpu": {
        "server_s": round(float(serve_cpu_s), 2),
        "offline_s": round(offline["cpu_s"], 2),
        "server_output_tokens_per_cpu_s": round(server_tok_per_cpu_s, 3),
        "offline_output_tokens_per_cpu_s": round(offline_tok_per_cpu_s, 3),
        "ratio": round(server_tok_per_cpu_s / offline_tok_per_cpu_s, 4),
        "how": ("server: frontend + engine-core processes over the timed bench (the client "
                "excluded); offline: the timed generate"),
    },
    "load_average": {"serve": load[0:2], "offline": load[2:4],
                     "note": "1-minute load average at start and end; the machine has 2 cores"},
    "ttft_ms": {"p50": serve["median_ttft_ms"], "p99": serve["p99_ttft_ms"],
                "mean": serve["mean_ttft_ms"]},
    "tpot_ms": {"p50": serve["median_tpot_ms"], "p99": serve["p99_tpot_ms"],
                "mean": serve["mean_tpot_ms"]},
    "itl_ms": {"p50": serve["median_itl_ms"], "p99": serve["p99_itl_ms"]},
    "server": {key: serve[key] for key in ("duration_s", "num_completed", "num_failed",
                                           "total_input_tokens", "total_output_tokens",
                                           "requests_per_s", "total_tokens_per_s")},
    "offline": {key: offline[key] for key in ("elapsed_s", "requests_per_s", "total_tokens_per_s")},
}
with open(output_path, "w") as handle:
    json.dump(record, handle, indent=2)
    handle.write("\n")
print(f"serve-32 (cpu, {num_prompts} prompts): server {server_tok_s:.1f} output tok/s, offline "
      f"{offline_tok_s:.1f}, ratio {server_tok_s / offline_tok_s:.3f} (per CPU second "
      f"{server_tok_per_cpu_s / offline_tok_per_cpu_s:.3f}); TTFT p50/p99 "
      f"{serve['median_ttft_ms']:.0f}/{serve['p99_ttft_ms']:.0f} ms, TPOT p50/p99 "
      f"{serve['median_tpot_ms']:.1f}/{serve['p99_tpot_ms']:.1f} ms -> {output_path}")
if serve["num_failed"]:
    sys.exit(f"serve-32: {serve['num_failed']} requests failed: {serve['errors']}")
EOF
