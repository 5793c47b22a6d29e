"""`tenon bench serve` end to end against the fake server: the flags, the table, the JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tenon.cli.bench_serve import load_bench_tokenizer
from tenon.cli.main import main
from tests.core.bench.fake_openai_server import FAKE_MODEL_ID, FakeServer, FakeServerConfig

CONFIG_KEYS = {
    "base_url", "endpoint", "model", "tokenizer", "num_prompts", "random_input_len",
    "random_output_len", "max_concurrency", "request_rate", "burstiness", "ignore_eos",
    "continuous_usage_stats", "seed", "num_warmups",
}
METRIC_KEYS = {
    "duration_s", "num_completed", "num_failed", "total_input_tokens", "total_output_tokens",
    "requests_per_s", "output_tokens_per_s", "total_tokens_per_s", "errors",
} | {
    f"{statistic}_{name}_ms"
    for name in ("ttft", "tpot", "itl", "e2el") for statistic in ("mean", "median", "p90", "p99")
}
RECORD_KEYS = {"workload", "model", "card", "versions", "value", "unit", "baseline", "limit",
               "fraction_of_limit", "date", "config"}


def test_bench_serve_writes_the_documented_record(
    start_fake_server: Callable[[FakeServerConfig], FakeServer], tiny_tokenizer_dir: Path,
    tiny_tokenizer: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    server = start_fake_server(FakeServerConfig(first_delay_s=0.02, chunk_delay_s=0.01))
    output_json = tmp_path / "serve.json"
    exit_code = main([
        "bench", "serve", "--base-url", server.base_url, "--tokenizer", str(tiny_tokenizer_dir),
        "--num-prompts", "6", "--random-input-len", "24", "--random-output-len", "4",
        "--max-concurrency", "2", "--request-rate", "200", "--ignore-eos", "--seed", "5",
        "--disable-tqdm", "--workload", "serve-32", "--output-json", str(output_json),
        "--baseline-output-tokens-per-s", "50",
    ])
    assert exit_code == 0
    assert "Serving Benchmark Result" in capsys.readouterr().out
    assert server.peak_active <= 2
    assert len(server.request_bodies) == 6
    for body in server.request_bodies:
        # --model defaults to the first id GET /v1/models lists.
        assert body["model"] == FAKE_MODEL_ID
        assert body["max_tokens"] == 4 and body["ignore_eos"] is True and body["stream"] is True
        assert len(tiny_tokenizer.encode(body["prompt"], add_special_tokens=False)) == 24

    record = json.loads(output_json.read_text())
    assert set(record) == RECORD_KEYS | METRIC_KEYS
    assert set(record["config"]) == CONFIG_KEYS
    assert record["workload"] == "serve-32" and record["model"] == FAKE_MODEL_ID
    assert record["card"] == "cpu" and record["unit"] == "output tokens/s"
    assert record["num_completed"] == 6 and record["num_failed"] == 0 and record["errors"] == []
    assert record["total_input_tokens"] == 6 * 24 and record["total_output_tokens"] == 6 * 4
    assert record["value"] == pytest.approx(record["output_tokens_per_s"], abs=1e-3)
    assert record["baseline"]["value"] == 50.0
    assert record["baseline"]["ratio"] == pytest.approx(record["output_tokens_per_s"] / 50.0)
    assert record["config"]["request_rate"] == 200.0 and record["config"]["max_concurrency"] == 2
    assert record["mean_ttft_ms"] >= 20.0 - 3
    # Four tokens: the first after 20 ms, three more 10 ms apart, at the earliest.
    assert record["mean_e2el_ms"] >= 20.0 + 3 * 10.0 - 3


def test_bench_serve_reports_failures(
    start_fake_server: Callable[[FakeServerConfig], FakeServer], tiny_tokenizer_dir: Path,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    server = start_fake_server(FakeServerConfig(first_delay_s=0.01, chunk_delay_s=0.01))
    output_json = tmp_path / "serve.json"
    # Nothing listens on the endpoint path: every request gets a 404.
    exit_code = main([
        "bench", "serve", "--base-url", server.base_url, "--endpoint", "/v1/missing",
        "--model", "named", "--tokenizer", str(tiny_tokenizer_dir), "--num-prompts", "3",
        "--random-input-len", "8", "--random-output-len", "2", "--disable-tqdm",
        "--output-json", str(output_json), "--card", "NVIDIA H100 80GB HBM3",
    ])
    assert exit_code == 1
    assert "error: HTTP 404" in capsys.readouterr().out
    record = json.loads(output_json.read_text())
    assert record["num_failed"] == 3 and record["num_completed"] == 0
    assert len(record["errors"]) == 1 and record["errors"][0].startswith("HTTP 404")
    assert record["card"] == "NVIDIA H100 80GB HBM3" and record["model"] == "named"
    assert record["baseline"]["value"] is None and record["mean_ttft_ms"] is None


def test_tokenizer_path_must_be_local(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="neither a local tokenizer directory"):
        load_bench_tokenizer(str(tmp_path / "HuggingFaceTB/SmolLM2-135M"))


@pytest.mark.default_model
def test_default_tokenizer_is_the_default_models() -> None:
    tokenizer = load_bench_tokenizer(None)
    assert tokenizer.vocab_size == 49152
    assert tokenizer.decode(tokenizer.encode("Hello world", add_special_tokens=False)) == "Hello world"
