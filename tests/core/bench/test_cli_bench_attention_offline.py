"""`tenon bench attention` and `tenon bench offline` end to end on the CPU: valid JSON records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tenon.bench.offline_limit import ModelCosts, OfflineWorkload, offline_limit
from tenon.cli.main import main
from tests.helpers.torch_threads import one_torch_thread  # noqa: F401 (fixture)

RECORD_KEYS = {"workload", "model", "card", "versions", "value", "unit", "baseline", "limit",
               "fraction_of_limit", "date"}




def test_attention_writes_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output_json = tmp_path / "attention.json"
    assert main(["bench", "attention", "--context-lens", "8", "13", "--batch-sizes", "2", "--num-heads", "4",
                 "--num-kv-heads", "2", "--head-size", "16", "--block-size", "4", "--dtype", "float32",
                 "--min-total-bytes", "10000", "--copy-size-bytes", str(1 << 20), "--num-warmup", "0",
                 "--num-repeats", "2", "--output-json", str(output_json)]) == 0
    records = json.loads(output_json.read_text())
    assert [(r["context_len"], r["batch_size"]) for r in records] == [(8, 2), (13, 2)]
    for record in records:
        assert RECORD_KEYS <= set(record)
        assert (record["workload"], record["card"], record["backend"], record["unit"]) == (
            "decode-attention", "cpu", "reference", "GB/s")
        assert record["baseline"] == {"name": None, "value": None, "ratio": None}
        assert record["limit"]["unit"] == "GB/s" and record["fraction_of_limit"] is not None
        assert record["attention_shape"] == {"num_heads": 4, "num_kv_heads": 2, "head_size": 16,
                                             "block_size": 4, "dtype": "float32"}
        assert record["max_model_len"] == 13
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("decode-attention on cpu") and out[1].split()[:3] == ["context", "batch", "buffers"]


def test_prefill_attention_writes_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output_json = tmp_path / "prefill.json"
    assert main(["bench", "prefill-attention", "--prompt-lens", "6", "11", "--num-prompts", "2",
                 "--cached-len", "4", "--num-heads", "4", "--num-kv-heads", "2", "--head-size", "16",
                 "--block-size", "4", "--dtype", "float32", "--min-total-bytes", "10000", "--matmul-size", "64",
                 "--num-warmup", "0", "--num-repeats", "2", "--baseline-backend", "torch-sdpa",
                 "--output-json", str(output_json)]) == 0
    records = json.loads(output_json.read_text())
    assert [(r["prompt_len"], r["num_prompts"], r["cached_len"]) for r in records] == [(6, 2, 4), (11, 2, 4)]
    for record in records:
        assert RECORD_KEYS <= set(record)
        assert (record["workload"], record["card"], record["backend"], record["unit"]) == (
            "prefill-attention", "cpu", "reference", "TFLOP/s")
        assert record["limit"]["unit"] == "TFLOP/s" and record["baseline"]["name"].startswith("torch-sdpa")
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("prefill-attention on cpu") and out[1].split()[:3] == ["prompt", "prompts", "us/layer"]


def test_offline_writes_records_with_limit_and_hf_ratio(tiny_dummy_model_dir: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from transformers import AutoConfig

    output_json = tmp_path / "offline.json"
    assert main(["bench", "offline", "--model", str(tiny_dummy_model_dir), "--load-format", "dummy",
                 "--dtype", "float32", "--max-model-len", "256", "--max-num-seqs", "4",
                 "--workload", "offline-128", "--num-prompts", "2", "--hf-baseline", "--hf-shape", "2x8x4",
                 "--hf-num-iters", "1", "--copy-size-bytes", str(1 << 20), "--matmul-size", "64",
                 "--matmul-sustain-s", "0.05", "--output-json", str(output_json)]) == 0
    ours, ours_hf_shape, hf = json.loads(output_json.read_text())
    for record in (ours, ours_hf_shape, hf):
        assert RECORD_KEYS <= set(record) and record["card"] == "cpu" and record["unit"] == "output tokens/s"
    assert (ours["workload"], ours["num_prompts"], ours["input_len"], ours["output_len"]) == ("offline-128", 2, 128, 128)
    assert ours["note"].startswith("reduced prompt count: 2 prompts instead of BENCHMARKS.md's 5000")
    assert ours["value"] == pytest.approx(2 * 128 / ours["elapsed_s"], rel=1e-3)
    # The limit is the model's, for the same prompt count, engine limits and measured rates.
    engine, card = ours["engine"], ours["card_limits"]
    limit = offline_limit(
        ModelCosts.from_config(AutoConfig.from_pretrained(tiny_dummy_model_dir), 4),
        OfflineWorkload(num_prompts=2, input_len=128, output_len=128, max_num_seqs=4,
                        max_num_batched_tokens=engine["max_num_batched_tokens"],
                        kv_capacity_tokens=engine["kv_capacity_tokens"]),
        copy_bandwidth_bytes_per_s=card["copy_bandwidth_bytes_per_s"], matmul_flops_per_s=card["matmul_bf16_flops_per_s"])
    assert ours["limit"]["value"] == round(limit.output_tokens_per_s, 2)
    assert ours["limit"]["num_steps"] == 128  # one prefill step, 127 decode steps
    assert ours["fraction_of_limit"] == pytest.approx(ours["value"] / ours["limit"]["value"], abs=1e-4)
    assert ours["time_over_floor"] == pytest.approx(ours["elapsed_s"] / limit.floor_s, rel=1e-2)
    # The serial floor is never below the limit's floor (it adds what the limit overlaps).
    assert ours["limit"]["serial"]["floor_s"] == round(limit.serial_floor_s, 4) >= ours["limit"]["floor_s"]
    assert ours["fraction_of_serial_limit"] == pytest.approx(ours["value"] / ours["limit"]["serial"]["value"], abs=1e-4)
    # The same limit at the sustained matmul rate, measured in the same call.
    sustained_rate = card["matmul_bf16_sustained_flops_per_s"]
    assert sustained_rate > 0 and len(card["matmul_sustained_samples_s"]) == 1
    sustained = offline_limit(
        ModelCosts.from_config(AutoConfig.from_pretrained(tiny_dummy_model_dir), 4), limit.workload,
        copy_bandwidth_bytes_per_s=card["copy_bandwidth_bytes_per_s"], matmul_flops_per_s=sustained_rate)
    assert ours["limit_at_sustained_matmul_rate"]["value"] == pytest.approx(sustained.output_tokens_per_s, rel=1e-6)
    assert ours["fraction_of_sustained_limit"] == pytest.approx(
        ours["value"] / ours["limit_at_sustained_matmul_rate"]["value"], abs=1e-4)
    assert engine["max_num_seqs"] == 4 and engine["kv_capacity_tokens"] % engine["block_size"] == 0
    assert (ours_hf_shape["workload"], ours_hf_shape["name"]) == ("hf-baseline", "tenon LLM.generate 2x8x4")
    assert ours_hf_shape["baseline"]["value"] == round(hf["value"], 3)
    assert ours_hf_shape["baseline"]["ratio"] == pytest.approx(ours_hf_shape["value"] / hf["value"], rel=1e-2)
    assert hf["name"] == "hf-transformers-generate float32 2x8x4" and len(hf["samples_s"]) == 1
    printed = capsys.readouterr().out
    assert "offline-128" in printed and "of serial" in printed and "of sustained" in printed
    assert "TFLOP/s sustained" in printed


def test_offline_prompt_counts_per_workload_are_checked_before_any_engine_starts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"one count, or one per workload \(2\).*\[1, 2, 3\]"):
        main(["bench", "offline", "--model", str(tmp_path), "--num-prompts", "1", "2", "3"])


@pytest.mark.parametrize(("flag", "matmul_sustain_s"), [([], 2.0), (["--matmul-sustain-s", "0"], None),
                                                        (["--matmul-sustain-s", "0.5"], 0.5)])
def test_offline_sustain_seconds_reach_the_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                   flag: list[str], matmul_sustain_s: float | None) -> None:
    from tenon.bench import offline

    seen: list[offline.OfflineOptions] = []

    def capture(engine_args: dict[str, object], options: offline.OfflineOptions) -> offline.OfflineRuns:
        seen.append(options)
        raise RuntimeError("captured")

    monkeypatch.setattr(offline, "run_offline", capture)
    with pytest.raises(RuntimeError, match="captured"):
        main(["bench", "offline", "--model", str(tmp_path), "--matmul-size", "64", *flag])
    [options] = seen
    assert options.matmul_sustain_s == matmul_sustain_s and options.matmul_size == 64


def test_offline_negative_sustain_seconds_are_refused_before_any_engine_starts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"--matmul-sustain-s takes seconds, at least 0.*got -1.0"):
        main(["bench", "offline", "--model", str(tmp_path), "--matmul-sustain-s", "-1"])
