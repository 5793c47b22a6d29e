"""The offline records' second limit, at the sustained matmul rate, against the limit model by hand."""

from __future__ import annotations

import random
import re
from typing import Any

from tenon.bench.gpu_limits import RateMeasurement
from tenon.bench.offline import EngineLimits, OfflineRuns, OfflineShape, ThroughputRun
from tenon.bench.offline_limit import ModelCosts, OfflineLimit, OfflineWorkload, offline_limit
from tenon.bench.offline_report import offline_records, offline_summary_lines
from tenon.bench.startup_timing import StartupTiming

SHAPE = OfflineShape(workload="offline-128", num_prompts=6, input_len=16, output_len=8)
BLOCK_SIZE = 16


def tiny_config() -> Any:
    import transformers

    return transformers.LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=320, max_position_embeddings=256, tie_word_embeddings=False)


def rate(work_per_sample: float, rng: random.Random, num_samples: int) -> RateMeasurement:
    return RateMeasurement(work_per_sample=work_per_sample,
                           samples_s=tuple(rng.uniform(0.5, 1.5) for _ in range(num_samples)))


def make_runs(sustained_flops_per_s: float | None) -> OfflineRuns:
    rng = random.Random(0)
    # H200-like matmul rates; a copy bandwidth far above any card's, so that the tiny model's steps
    # are compute-bound and the matmul rate moves the limit.
    bandwidth, matmul = rate(3.0e15, rng, 5), rate(7.68e14, rng, 5)
    sustained = None
    if sustained_flops_per_s is not None:
        sustained = RateMeasurement(work_per_sample=sustained_flops_per_s * 0.75, samples_s=(0.75,))
    engine = EngineLimits(max_num_seqs=4, max_num_batched_tokens=32, kv_capacity_tokens=6 * BLOCK_SIZE,
                          block_size=BLOCK_SIZE, slots={"attention": "reference"}, notes=("a note",))
    startup = StartupTiming(wall_s=1.5, phases_s={"model": 0.5, "cache": 0.25}, weights_s=0.5,
                            other_phases_s=0.25)
    # A run somewhat slower than the burst limit's floor, so the fractions are of order one.
    burst_floor_s = limit_by_hand(bandwidth.rate_per_s, matmul.rate_per_s).floor_s
    run = ThroughputRun(shape=SHAPE, elapsed_s=burst_floor_s * rng.uniform(1.2, 1.6), num_output_tokens=6 * 8)
    return OfflineRuns(model="tiny", dtype="bfloat16", hf_config=tiny_config(), bandwidth=bandwidth,
                       matmul=matmul, matmul_sustained=sustained, engine=engine, startup=startup, runs=(run,),
                       ours_on_hf_shape=None, hf=None)


def limit_by_hand(copy_bandwidth_bytes_per_s: float, matmul_flops_per_s: float) -> OfflineLimit:
    workload = OfflineWorkload(num_prompts=6, input_len=16, output_len=8, max_num_seqs=4, max_num_batched_tokens=32,
                               kv_capacity_tokens=6 * BLOCK_SIZE)
    return offline_limit(ModelCosts.from_config(tiny_config(), 2), workload,
                         copy_bandwidth_bytes_per_s=copy_bandwidth_bytes_per_s,
                         matmul_flops_per_s=matmul_flops_per_s)


def table_rows(lines: list[str]) -> list[dict[str, str]]:
    headers, *rows = (re.split(r"\s{2,}", line.strip()) for line in lines[2:])
    return [dict(zip(headers, row, strict=True)) for row in rows]


def test_sustained_limit_is_the_limit_model_at_the_sustained_rate() -> None:
    runs = make_runs(sustained_flops_per_s=6.62e14)
    [record] = offline_records(runs)
    sustained = limit_by_hand(runs.bandwidth.rate_per_s, 6.62e14)
    assert record["limit_at_sustained_matmul_rate"] == {
        "value": round(sustained.output_tokens_per_s, 2), "floor_s": round(sustained.floor_s, 4),
        "matmul_flops_per_s": 662_000_000_000_000, "serial_value": round(sustained.serial_output_tokens_per_s, 2)}
    value = runs.runs[0].output_tokens_per_s
    assert record["fraction_of_sustained_limit"] == round(value / sustained.output_tokens_per_s, 4)
    # The burst limit is BENCHMARKS.md's, as before; the slower sustained rate lowers the second one.
    burst = limit_by_hand(runs.bandwidth.rate_per_s, runs.matmul.rate_per_s)
    assert record["limit"] == burst.as_limit()
    assert record["fraction_of_limit"] == round(value / burst.as_limit()["value"], 4)
    assert sustained.output_tokens_per_s < burst.output_tokens_per_s
    assert record["fraction_of_sustained_limit"] > record["fraction_of_limit"]
    card = record["card_limits"]
    assert card["matmul_bf16_sustained_flops_per_s"] == 662_000_000_000_000
    assert card["matmul_sustained_samples_s"] == [0.75]
    assert card["matmul_bf16_flops_per_s"] == round(runs.matmul.rate_per_s)


def test_a_lower_sustained_rate_gives_a_higher_fraction() -> None:
    [faster] = offline_records(make_runs(sustained_flops_per_s=7.0e14))
    [slower] = offline_records(make_runs(sustained_flops_per_s=5.0e14))
    assert slower["limit_at_sustained_matmul_rate"]["value"] < faster["limit_at_sustained_matmul_rate"]["value"]
    assert slower["fraction_of_sustained_limit"] > faster["fraction_of_sustained_limit"]
    assert (slower["limit"], slower["fraction_of_limit"]) == (faster["limit"], faster["fraction_of_limit"])


def test_without_the_sustained_rate_the_fields_are_none_and_the_table_shows_a_dash() -> None:
    [record] = offline_records(make_runs(sustained_flops_per_s=None))
    [measured] = offline_records(make_runs(sustained_flops_per_s=6.62e14))
    assert record["limit_at_sustained_matmul_rate"] is None and record["fraction_of_sustained_limit"] is None
    assert record["card_limits"]["matmul_bf16_sustained_flops_per_s"] is None
    assert record["card_limits"]["matmul_sustained_samples_s"] is None
    assert (record["limit"], record["fraction_of_limit"]) == (measured["limit"], measured["fraction_of_limit"])
    lines = offline_summary_lines([record])
    assert lines[1].endswith(" TFLOP/s burst, sustained not measured")
    [row] = table_rows(lines)
    assert row["of sustained"] == "-" and row["of limit"] == f"{record['fraction_of_limit']:.3f}"
    # A record written before the sustained rate existed prints the same.
    old = {key: value for key, value in record.items() if "sustained" not in key}
    old["card_limits"] = {key: value for key, value in record["card_limits"].items() if "sustained" not in key}
    assert offline_summary_lines([old]) == lines


def test_table_prints_the_sustained_rate_and_fraction() -> None:
    runs = make_runs(sustained_flops_per_s=6.62e14)
    [record] = offline_records(runs)
    lines = offline_summary_lines([record])
    assert lines[1].endswith(f"{runs.matmul.rate_per_s / 1e12:.1f} TFLOP/s burst, 662.0 TFLOP/s sustained")
    [row] = table_rows(lines)
    assert row["of sustained"] == f"{record['fraction_of_sustained_limit']:.3f}"
    assert row["workload"] == "offline-128" and row["vs HF"] == "-"


def test_records_keep_the_same_keys_with_or_without_the_sustained_rate() -> None:
    [with_rate] = offline_records(make_runs(sustained_flops_per_s=6.62e14))
    [without] = offline_records(make_runs(sustained_flops_per_s=None))
    assert set(with_rate) == set(without) and set(with_rate["card_limits"]) == set(without["card_limits"])
