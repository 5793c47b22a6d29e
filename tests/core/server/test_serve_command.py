"""`tenon serve`: flags, the ready line, and a real server process answering the openai client."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import openai

from tenon.cli.main import build_parser
from tenon.cli.serve import engine_args_from, ready_message

READY_TIMEOUT_S = 120.0


def test_flags_are_vllm_names_and_served_names_take_several() -> None:
    args = build_parser().parse_args(
        ["serve", "/models/m", "--port", "9001", "--host", "127.0.0.1", "--api-key", "k",
         "--served-model-name", "a", "b", "--max-model-len", "64", "--max-num-seqs", "4",
         "--no-enable-prefix-caching"])
    engine_args, names = engine_args_from(args)
    assert (args.host, args.port, args.api_key, names) == ("127.0.0.1", 9001, "k", ["a", "b"])
    assert (engine_args.model, engine_args.served_model_name) == ("/models/m", "a")
    assert (engine_args.max_model_len, engine_args.max_num_seqs) == (64, 4)
    assert engine_args.enable_prefix_caching is False
    default_args, default_names = engine_args_from(build_parser().parse_args(["serve"]))
    assert (default_args.model, default_names, default_args.served_model_name) == (None, None, None)


def test_ready_message_has_a_working_curl_example() -> None:
    message = ready_message("tiny", "0.0.0.0", 8000, api_key="secret")
    assert "http://localhost:8000" in message
    assert ("curl http://localhost:8000/v1/chat/completions -H 'Content-Type: application/json' "
            '-H "Authorization: Bearer $API_KEY" -d \'{"model": "tiny", ') in message
    assert "secret" not in message  # the key itself is never printed


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_process_answers_and_stops_on_sigterm(server_model_dir: Path) -> None:
    port = _free_port()
    command = [sys.executable, "-m", "tenon.cli.main", "serve", str(server_model_dir),
               "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "128",
               "--max-num-seqs", "4", "--served-model-name", "tiny", "--api-key", "k",
               "--uvicorn-log-level", "warning"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert process.stdout is not None
        deadline_s = time.monotonic() + READY_TIMEOUT_S
        lines = []
        while not any(line.startswith("tenon: serving tiny at") for line in lines):
            assert time.monotonic() < deadline_s and process.poll() is None, "".join(lines)
            lines.append(process.stdout.readline())
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
        response = client.completions.create(model="tiny", prompt="hello", max_tokens=3,
                                             extra_body={"ignore_eos": True})
        assert response.usage is not None and response.usage.completion_tokens == 3
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
