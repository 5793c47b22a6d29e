#!/usr/bin/env bash
# serve-32 (BENCHMARKS.md) on the GPU: llama-3.1-8b with dummy bf16 weights, against offline
# throughput on the same shapes and engine flags, in one run:
#   1. `tenon serve` on 127.0.0.1; one warm-up request (4 tokens); then `tenon bench serve`
#      (200 prompts, 1024 in / 128 out, concurrency 32, ignore_eos); the server is stopped;
#   2. `tenon bench throughput` (the offline `LLM`) on the same shapes and flags, alone on the card;
#   3. one JSON record: value = server output tok/s, baseline = offline output tok/s, the ratio,
#      TTFT and TPOT p50/p99.
#
# Tokenizer: the dummy model has none. TOKENIZER (a tokenizer directory or .gguf file) drives
# both the server and the client; by default a word-level tokenizer covering the model's whole
# vocabulary is generated (`tenon.bench.word_tokenizer`), because a smaller real vocabulary (the
# default model's 49,152 ids) decodes most of the ids a random llama samples to nothing, and
# the client then sees fewer chunks than tokens.
#
# Environment: MODEL (default benchmarks/configs/llama-3.1-8b), DTYPE (bfloat16), LOAD_FORMAT
# (dummy), MAX_MODEL_LEN (4096), TOKENIZER, NUM_PROMPTS (200), CONCURRENCY (32), INPUT_LEN (1024),
# OUTPUT_LEN (128), ENGINE_FLAGS (default "--max-num-seqs 32 --max-num-batched-tokens 8192", so the
# offline run batches as the server does: the platform gives the two different token budgets),
# PORT (default: a free one), HEALTH_TIMEOUT_S (600), OUTPUT_JSON (default
# benchmarks/results/serve-32-gpu.json), TENON (default .venv/bin/tenon if present, else tenon on
# PATH). A smoke test on the CPU: OMP_NUM_THREADS=1 MODEL=<tiny llama dir> DTYPE=float32 MAX_MODEL_LEN=256
# NUM_PROMPTS=4 CONCURRENCY=2 INPUT_LEN=32 OUTPUT_LEN=8 (the record flags non-standard shapes).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${TENON:-}" ]; then
    if [ -x .venv/bin/tenon ]; then TENON=.venv/bin/tenon; else TENON=$(command -v tenon); fi
fi
PYTHON=$(dirname "$TENON")/python
[ -x "$PYTHON" ] || PYTHON=$(command -v python3)
MODEL=${MODEL:-benchmarks/configs/llama-3.1-8b}
DTYPE=${DTYPE:-bfloat16}
LOAD_FORMAT=${LOAD_FORMAT:-dummy}
MAX_MODEL_LEN=${MAX_MODEL_LEN:-4096}
NUM_PROMPTS=${NUM_PROMPTS:-200}
CONCURRENCY=${CONCURRENCY:-32}
INPUT_LEN=${INPUT_LEN:-1024}
OUTPUT_LEN=${OUTPUT_LEN:-128}
ENGINE_FLAGS=${ENGINE_FLAGS:---max-num-seqs 32 --max-num-batched-tokens 8192}
HEALTH_TIMEOUT_S=${HEALTH_TIMEOUT_S:-600}
OUTPUT_JSON=${OUTPUT_JSON:-benchmarks/results/serve-32-gpu.json}
MODEL_FLAGS="--load-format $LOAD_FORMAT --dtype $DTYPE --max-model-len $MAX_MODEL_LEN"

# shellcheck source=benchmarks/serve_lifecycle.sh
. benchmarks/serve_lifecycle.sh

if [ -z "${TOKENIZER:-}" ]; then
    TOKENIZER="$work_dir/word-tokenizer"
    "$PYTHON" -m tenon.bench.word_tokenizer "$TOKENIZER" --model-config "$MODEL"
    tokenizer_name="word-level, the model's whole vocabulary (tenon.bench.word_tokenizer)"
else
    tokenizer_name="$TOKENIZER"
fi

stage_start_s=$SECONDS
# shellcheck disable=SC2086  # MODEL_FLAGS and ENGINE_FLAGS are lists of flags
start_server "$MODEL" --tokenizer "$TOKENIZER" --served-model-name "$(basename "$MODEL")" \
    $MODEL_FLAGS $ENGINE_FLAGS
server_startup_s=$((SECONDS - stage_start_s))

"$TENON" bench serve --base-url "$BASE_URL" --tokenizer "$TOKENIZER" --random-input-len "$INPUT_LEN" \
    --random-output-len 4 --num-prompts 1 --ignore-eos --disable-tqdm --seed 1 >/dev/null
"$TENON" bench serve --base-url "$BASE_URL" --tokenizer "$TOKENIZER" --random-input-len "$INPUT_LEN" \
    --random-output-len "$OUTPUT_LEN" --max-concurrency "$CONCURRENCY" \
    --num-prompts "$NUM_PROMPTS" --ignore-eos --disable-tqdm \
    --workload serve-32 --output-json "$work_dir/serve.json"
stop_server
echo "serve-32: server stage took $((SECONDS - stage_start_s)) s (start-up $server_startup_s s)"

stage_start_s=$SECONDS
# shellcheck disable=SC2086
"$TENON" bench throughput --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" \
    --num-prompts "$NUM_PROMPTS" --model "$MODEL" $MODEL_FLAGS $ENGINE_FLAGS \
    --output-json "$work_dir/offline.json"
echo "serve-32: offline stage took $((SECONDS - stage_start_s)) s"

"$PYTHON" - "$work_dir/serve.json" "$work_dir/offline.json" "$OUTPUT_JSON" "$NUM_PROMPTS" \
    "$CONCURRENCY" "$MODEL_FLAGS $ENGINE_FLAGS" "$tokenizer_name" "$server_startup_s" <<'EOF'
import json
import sys

(serve_path, offline_path, output_path, num_prompts, concurrency, engine_flags, tokenizer,
 server_startup_s) = sys.argv[1:]
serve = json.load(open(serve_path))
offline = json.load(open(offline_path))
config = serve["config"]
server_tok_s = serve["output_tokens_per_s"]
offline_tok_s = offline["output_tokens_per_s"]
standard = (int(num_prompts), config["random_input_len"], config["random_output_len"], int(concurrency))
note = None
if standard != (200, 1024, 128, 32):
    note = (f"non-standard run: {num_prompts} prompts, {config['random_input_len']} in / "
            f"{config['random_output_len']} out, concurrency {concurrency} (BENCHMARKS.md: 200, "
            "1024 / 128, 32)")
record = {
    "workload": "serve-32",
    "model": serve["model"],
    "card": serve["card"],
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
    "note": note,
    "num_prompts": int(num_prompts),
    "input_len": config["random_input_len"],
    "output_len": config["random_output_len"],
    "concurrency": int(concurrency),
    "engine_flags": engine_flags,
    "tokenizer": tokenizer,
    "server_startup_s": int(server_startup_s),
    "ttft_ms": {"p50": serve["median_ttft_ms"], "p99": serve["p99_ttft_ms"], "mean": serve["mean_ttft_ms"]},
    "tpot_ms": {"p50": serve["median_tpot_ms"], "p99": serve["p99_tpot_ms"], "mean": serve["mean_tpot_ms"]},
    "itl_ms": {"p50": serve["median_itl_ms"], "p99": serve["p99_itl_ms"]},
    "server": {key: serve[key] for key in ("duration_s", "num_completed", "num_failed",
                                           "total_input_tokens", "total_output_tokens",
                                           "requests_per_s", "total_tokens_per_s")},
    "offline": {key: offline[key] for key in ("elapsed_s", "requests_per_s", "total_tokens_per_s")},
}
with open(output_path, "w") as handle:
    json.dump(record, handle, indent=2)
    handle.write("\n")
print(f"serve-32 ({record['card']}, {num_prompts} prompts): server {server_tok_s:.1f} output tok/s, "
      f"offline {offline_tok_s:.1f}, ratio {server_tok_s / offline_tok_s:.3f}; TTFT p50/p99 "
      f"{serve['median_ttft_ms']:.0f}/{serve['p99_ttft_ms']:.0f} ms, TPOT p50/p99 "
      f"{serve['median_tpot_ms']:.1f}/{serve['p99_tpot_ms']:.1f} ms -> {output_path}")
if serve["num_failed"]:
    sys.exit(f"serve-32: {serve['num_failed']} requests failed: {serve['errors']}")
EOF
