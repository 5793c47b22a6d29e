"""`tenon bench latency | startup | decode1-report | hf-baseline` end to end on a tiny dummy model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tenon.cli.main import main

RECORD_KEYS = {"workload", "model", "card", "versions", "value", "unit", "baseline", "limit",
               "fraction_of_limit", "date"}
LATENCY_KEYS = {"input_len", "output_len", "batch_size", "num_iters_warmup", "num_iters", "seed", "tpot_ms",
                "stream_output_tokens_per_s", "output_tokens_per_s", "decode_tokens_per_s", "latencies_s",
                "first_token_latencies_s"} | {
    f"{statistic}_{name}_ms" for name in ("latency", "ttft") for statistic in ("mean", "median", "p90", "p99")}
STARTUP_KEYS = {"wall_s", "phases_s", "weights_s", "other_phases_s", "outside_phases_s",
                "process_to_ready_s"}
# The tiny llama (hidden 64, FFN 128, 2 layers, 4 heads of 16, 2 KV heads, vocab 320, untied):
# per layer 64 * (64 + 2 * 32) + 64 * 64 + 3 * 64 * 128 + 2 * 64 = 36,992 parameters.
TINY_DECODE_PARAMS = 2 * 36_992 + 64 + 320 * 64 + 64


def engine_flags(model_dir: Path) -> list[str]:
    return ["--model", str(model_dir), "--load-format", "dummy", "--dtype", "float32", "--max-model-len", "64",
            "--max-num-seqs", "4"]


def test_latency_writes_the_record(tiny_dummy_model_dir: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    output_json = tmp_path / "latency.json"
    assert main(["bench", "latency", *engine_flags(tiny_dummy_model_dir), "--input-len", "12",
                 "--output-len", "5", "--num-iters-warmup", "1", "--num-iters", "3",
                 "--output-json", str(output_json)]) == 0
    out = capsys.readouterr().out
    assert "latency ms: avg" in out and "TPOT ms:" in out and "s to ready" in out
    record = json.loads(output_json.read_text())
    assert RECORD_KEYS <= set(record)
    assert record["workload"] == "decode-1" and record["card"] == "cpu" and record["unit"] == "output tokens/s"
    assert record["model"] == str(tiny_dummy_model_dir) and record["dtype"] == "float32"
    assert record["baseline"] == {"name": None, "value": None, "ratio": None}
    assert record["limit"] is None and record["fraction_of_limit"] is None
    latency = record["latency"]
    assert set(latency) == LATENCY_KEYS
    assert (latency["input_len"], latency["output_len"], latency["batch_size"]) == (12, 5, 1)
    assert len(latency["latencies_s"]) == 3 and len(latency["first_token_latencies_s"]) == 3
    assert record["value"] == pytest.approx(5 / (sum(latency["latencies_s"]) / 3), rel=1e-3)
    assert set(record["startup"]) == STARTUP_KEYS
    assert record["startup"]["weights_s"] == record["startup"]["phases_s"]["model"]


def test_latency_batch_names_its_workload(tiny_dummy_model_dir: Path, tmp_path: Path) -> None:
    output_json = tmp_path / "latency.json"
    assert main(["bench", "latency", *engine_flags(tiny_dummy_model_dir), "--input-len", "6",
                 "--output-len", "3", "--batch-size", "3", "--num-iters-warmup", "0", "--num-iters", "1",
                 "--output-json", str(output_json)]) == 0
    record = json.loads(output_json.read_text())
    assert record["workload"] == "latency" and record["latency"]["batch_size"] == 3
    assert record["value"] == pytest.approx(3 * record["latency"]["stream_output_tokens_per_s"], rel=1e-3)


def test_startup_records_cold_and_warm_starts(tiny_dummy_model_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    output_json = tmp_path / "startup.json"
    assert main(["bench", "startup", *engine_flags(tiny_dummy_model_dir), "--num-starts", "2",
                 "--output-json", str(output_json)]) == 0
    assert "start 2 (warm)" in capsys.readouterr().out
    record = json.loads(output_json.read_text())
    assert RECORD_KEYS <= set(record) and record["workload"] == "startup"
    starts = record["starts"]
    assert len(starts) == 2 and all(set(start) == STARTUP_KEYS for start in starts)
    assert record["cold_s"] == starts[0]["wall_s"] and record["warm_s"] == starts[1]["wall_s"]
    assert record["value"] == round(record["cold_s"], 3)
    for start in starts:
        assert {"plugins", "config", "model", "kv cache", "runner"} <= set(start["phases_s"])
        assert start["other_phases_s"] == pytest.approx(sum(start["phases_s"].values()) - start["weights_s"])
        assert start["outside_phases_s"] >= 0.0
    # only the first start in a process is timed from the process's creation (the pytest
    # process here, so it is long past)
    assert starts[0]["process_to_ready_s"] > starts[0]["wall_s"]
    assert starts[1]["process_to_ready_s"] is None


def test_decode1_report_fills_baseline_and_limit(tiny_dummy_model_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    output_json = tmp_path / "decode1.json"
    assert main(["bench", "decode1-report", *engine_flags(tiny_dummy_model_dir), "--input-len", "8",
                 "--output-len", "4", "--num-iters-warmup", "1", "--num-iters", "2", "--hf-num-iters", "1",
                 "--hf-shape", "2x8x4", "--copy-size-bytes", str(1 << 20), "--matmul-size", "64",
                 "--output-json", str(output_json)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"decode-1 on cpu: {tiny_dummy_model_dir}, float32"
    assert "limit" in lines[1] and "tenon --enforce-eager" in lines[-3]
    records = json.loads(output_json.read_text())
    assert [(r["workload"], r.get("enforce_eager"), r.get("batch_size")) for r in records] == [
        ("decode-1", False, None), ("decode-1", True, None), ("hf-baseline", None, 1), ("hf-baseline", None, 2)]
    ours, eager, hf_same, hf_batch = records
    bandwidth = ours["card_limits"]["copy_bandwidth_bytes_per_s"]
    assert ours["limit"]["bytes_per_step"] == TINY_DECODE_PARAMS * 4
    assert ours["limit"]["value"] == pytest.approx(bandwidth / (TINY_DECODE_PARAMS * 4), abs=0.01)
    for record in (ours, eager):
        assert RECORD_KEYS <= set(record) and record["limit"] == ours["limit"]
        assert record["fraction_of_limit"] == pytest.approx(record["value"] / ours["limit"]["value"], abs=1e-4)
        assert record["baseline"]["name"] == "hf-transformers-generate float32 1x8x4"
        assert record["baseline"]["value"] == pytest.approx(hf_same["value"], abs=1e-3)
        assert record["baseline"]["ratio"] == pytest.approx(record["value"] / hf_same["value"], abs=1e-3)
        assert set(record["startup"]) == STARTUP_KEYS
        assert record["memory_after_shutdown_bytes"] is None  # no CUDA here
    assert hf_same["limit"] == ours["limit"] and hf_batch["limit"] is None
    assert hf_batch["name"] == "hf-transformers-generate float32 2x8x4"
    assert hf_batch["value"] == pytest.approx(2 * 4 / hf_batch["samples_s"][0], rel=1e-3)


def test_hf_baseline_command(tiny_dummy_model_dir: Path, tmp_path: Path) -> None:
    output_json = tmp_path / "hf.json"
    assert main(["bench", "hf-baseline", "--model", str(tiny_dummy_model_dir), "--dtype", "float32",
                 "--shape", "1x6x3", "--shape", "2x4x3", "--num-iters", "1",
                 "--output-json", str(output_json)]) == 0
    records = json.loads(output_json.read_text())
    assert [(r["batch_size"], r["input_len"], r["output_len"]) for r in records] == [(1, 6, 3), (2, 4, 3)]
    for record in records:
        assert RECORD_KEYS <= set(record) and record["workload"] == "hf-baseline" and record["card"] == "cpu"
        assert record["value"] == pytest.approx(
            record["batch_size"] * 3 / record["samples_s"][0], rel=1e-3)
