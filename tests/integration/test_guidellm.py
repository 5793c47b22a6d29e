"""GuideLLM benchmarks a live Tenon server with no errors, and its counts match the server's.

`guidellm run` (its CLI, in a subprocess) sends 10 streamed requests, four at a time, of
synthetic prompts of 16 tokens (made with the model directory's own tokenizer) for 8 tokens
each, to /v1/completions and to /v1/chat/completions. Its JSON report must show 10 successful
requests and none errored or incomplete; the token counts it read from the streams' usage
must be what the server's /metrics counted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.core.server.live_server import LiveServer
from tests.integration.eval_server import EVAL_API_KEY, EVAL_SERVED_NAME

pytest.importorskip("guidellm", reason="GuideLLM is not installed: pip install guidellm")

NUM_REQUESTS = 10
NUM_STREAMS = 4
PROMPT_TOKENS = 16
OUTPUT_TOKENS = 8
GUIDELLM_TIMEOUT_S = 240.0

pytestmark = pytest.mark.slow


def _server_counter(metrics_text: str, name: str) -> float:
    """The sum of a counter's samples (over all label sets) in a Prometheus text page."""
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", re.MULTILINE)
    return sum(float(value) for value in pattern.findall(metrics_text))


def _server_counts(server: LiveServer) -> dict[str, float]:
    metrics_text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    return {name: _server_counter(metrics_text, f"vllm:{name}")
            for name in ("request_success_total", "prompt_tokens_total", "generation_tokens_total")}


def _run_guidellm(server: LiveServer, model_dir: Path, request_format: str,
                  work_dir: Path) -> dict[str, Any]:
    report_path = work_dir / "benchmarks.json"
    backend = (f"kind=openai_http,target={server.base_url},model={EVAL_SERVED_NAME},"
               f"request_format={request_format},api_key={EVAL_API_KEY}")
    command = [
        sys.executable, "-m", "guidellm", "run",
        "--backend", backend,
        "--profile", f"kind=concurrent,streams={NUM_STREAMS}",
        "--constraint", f"kind=max_requests,count={NUM_REQUESTS}",
        "--tokenizer", f"kind=huggingface_auto,model={model_dir}",
        "--data",
        f"kind=synthetic_text,prompt_tokens={PROMPT_TOKENS},output_tokens={OUTPUT_TOKENS}",
        # Its default prefetches 4096 samples per worker: seconds of work for 10 requests.
        "--data-loader", "kind=pytorch,prefetch_factor=16",
        "--output", f"kind=json,path={report_path}",
        "--disable-console",
    ]
    completed = subprocess.run(command, cwd=work_dir, env=dict(os.environ), capture_output=True,
                               text=True, timeout=GUIDELLM_TIMEOUT_S, check=False)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    return json.loads(report_path.read_text())


@pytest.mark.parametrize("request_format", ["/v1/completions", "/v1/chat/completions"])
def test_guidellm_benchmark_has_no_errors(eval_server: LiveServer, eval_model_dir: Path,
                                          tmp_path: Path, request_format: str) -> None:
    before = _server_counts(eval_server)
    report = _run_guidellm(eval_server, eval_model_dir, request_format, tmp_path)
    after = _server_counts(eval_server)

    (benchmark,) = report["benchmarks"]
    assert benchmark["metrics"]["request_totals"] == {
        "successful": NUM_REQUESTS, "errored": 0, "incomplete": 0, "total": NUM_REQUESTS}
    requests = benchmark["requests"]["successful"]
    assert [request["info"]["error"] for request in requests] == [None] * NUM_REQUESTS
    # GuideLLM sends ignore_eos, so every request runs to its max tokens.
    output_tokens = [request["output_metrics"]["text_tokens"] for request in requests]
    assert output_tokens == [OUTPUT_TOKENS] * NUM_REQUESTS
    prompt_tokens = [request["input_metrics"]["text_tokens"] for request in requests]
    if request_format == "/v1/completions":
        # The prompts GuideLLM sized with the tokenizer are as long on the server.
        assert prompt_tokens == [PROMPT_TOKENS] * NUM_REQUESTS
    assert after["request_success_total"] - before["request_success_total"] == NUM_REQUESTS
    assert after["prompt_tokens_total"] - before["prompt_tokens_total"] == sum(prompt_tokens)
    num_generated_tokens = after["generation_tokens_total"] - before["generation_tokens_total"]
    assert num_generated_tokens == sum(output_tokens)
