# Sourced by the serve benchmarks (run_serve32_cpu.sh, run_serve32_gpu.sh): a `tenon serve`
# process in the background, stopped on exit, and a wait for its /health.
# Needs PYTHON and HEALTH_TIMEOUT_S; sets PORT (unless given), BASE_URL and work_dir.

PORT=${PORT:-$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
BASE_URL="http://127.0.0.1:$PORT"
work_dir=$(mktemp -d)
server_pid=""

stop_server() {
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
trap 'stop_server; rm -rf "$work_dir"' EXIT

start_server() {  # start_server ARG...: `tenon serve ARG...` on 127.0.0.1:$PORT, then wait
    "$TENON" serve --host 127.0.0.1 --port "$PORT" --uvicorn-log-level warning "$@" \
        >"$work_dir/server.log" 2>&1 &
    server_pid=$!
    echo "serve-32: waiting for $BASE_URL/health (log: $work_dir/server.log)"
    local deadline_s=$((SECONDS + HEALTH_TIMEOUT_S))
    until "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
            "$BASE_URL/health" 2>/dev/null; do
        if ! kill -0 "$server_pid" 2>/dev/null || [ "$SECONDS" -gt "$deadline_s" ]; then
            echo "serve-32: the server did not come up; its log:" >&2
            cat "$work_dir/server.log" >&2
            exit 1
        fi
        sleep 1
    done
}
