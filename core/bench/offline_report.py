"""The offline workloads' BENCHMARKS.md records and the short table printed last.

`limit` and `fraction_of_limit` are BENCHMARKS.md's, with the burst matmul rate. When the
sustained matmul rate was measured, each run also carries the same limit at that rate
(`limit_at_sustained_matmul_rate`, `fraction_of_sustained_limit`); else those are None.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from tenon.bench.offline import OFFLINE_SHAPES, OfflineRuns, OfflineShape, ThroughputRun
from tenon.bench.offline_limit import ModelCosts, OfflineLimit, OfflineWorkload, offline_limit
from tenon.bench.record_comparisons import no_baseline
from tenon.bench.report import result_record


def limit_for(runs: OfflineRuns, shape: OfflineShape, *, kv_capacity_tokens: int | None,
              matmul_flops_per_s: float | None = None) -> OfflineLimit:
    """The limit model for `shape` with the engine's limits; `matmul_flops_per_s` defaults to the
    burst matmul rate measured in `runs`."""
    dtype_bytes = torch.empty(0, dtype=getattr(torch, runs.dtype)).element_size()
    workload = OfflineWorkload(
        num_prompts=shape.num_prompts, input_len=shape.input_len, output_len=shape.output_len,
        max_num_seqs=runs.engine.max_num_seqs, max_num_batched_tokens=runs.engine.max_num_batched_tokens,
        kv_capacity_tokens=kv_capacity_tokens)
    if matmul_flops_per_s is None:
        matmul_flops_per_s = runs.matmul.rate_per_s
    return offline_limit(ModelCosts.from_config(runs.hf_config, dtype_bytes), workload,
                         copy_bandwidth_bytes_per_s=runs.bandwidth.rate_per_s,
                         matmul_flops_per_s=matmul_flops_per_s)


def _sustained_limit(runs: OfflineRuns, run: ThroughputRun) -> dict[str, Any]:
    if runs.matmul_sustained is None:
        return {"limit_at_sustained_matmul_rate": None, "fraction_of_sustained_limit": None}
    limit = limit_for(runs, run.shape, kv_capacity_tokens=runs.engine.kv_capacity_tokens,
                      matmul_flops_per_s=runs.matmul_sustained.rate_per_s)
    return {
        "limit_at_sustained_matmul_rate": {
            "value": round(limit.output_tokens_per_s, 2), "floor_s": round(limit.floor_s, 4),
            "matmul_flops_per_s": round(limit.matmul_flops_per_s),
            "serial_value": round(limit.serial_output_tokens_per_s, 2)},
        "fraction_of_sustained_limit": round(run.output_tokens_per_s / limit.output_tokens_per_s, 4),
    }


def _prompt_count_note(shape: OfflineShape) -> str | None:
    standard = OFFLINE_SHAPES.get(shape.workload)
    if standard is None or standard.num_prompts == shape.num_prompts:
        return None
    return (f"reduced prompt count: {shape.num_prompts} prompts instead of BENCHMARKS.md's "
            f"{standard.num_prompts}, same shapes; the limit is computed for {shape.num_prompts}")


def _run_record(runs: OfflineRuns, run: ThroughputRun, *, name: str, baseline: dict[str, Any],
                card_limits: dict[str, Any]) -> dict[str, Any]:
    engine_limit = limit_for(runs, run.shape, kv_capacity_tokens=runs.engine.kv_capacity_tokens)
    unbounded = limit_for(runs, run.shape, kv_capacity_tokens=None)
    return result_record(
        workload=run.shape.workload, model=runs.model, value=run.output_tokens_per_s, unit="output tokens/s",
        baseline=baseline, limit=engine_limit.as_limit(),
        extra={
            "name": name, "dtype": runs.dtype, "num_prompts": run.shape.num_prompts,
            "input_len": run.shape.input_len, "output_len": run.shape.output_len,
            "note": _prompt_count_note(run.shape),
            "elapsed_s": run.elapsed_s, "total_tokens_per_s": round(run.total_tokens_per_s, 3),
            "requests_per_s": round(run.shape.num_prompts / run.elapsed_s, 3),
            "time_over_floor": round(run.elapsed_s / engine_limit.floor_s, 3),
            "fraction_of_serial_limit": round(run.output_tokens_per_s / engine_limit.serial_output_tokens_per_s, 4),
            "limit_with_unbounded_kv": {"value": round(unbounded.output_tokens_per_s, 2),
                                        "floor_s": round(unbounded.floor_s, 4)},
            **_sustained_limit(runs, run),
            "engine": {**attrs.asdict(runs.engine), "notes": list(runs.engine.notes)},
            "startup": runs.startup.as_dict(), "card_limits": card_limits,
        },
    )


def offline_records(runs: OfflineRuns) -> list[dict[str, Any]]:
    """One record per workload; with the HF baseline, ours on its shape (baseline: HF, ratio)
    and HF's own record."""
    card_limits = {"copy_bandwidth_bytes_per_s": round(runs.bandwidth.rate_per_s),
                   "copy_samples_s": list(runs.bandwidth.samples_s),
                   "matmul_bf16_flops_per_s": round(runs.matmul.rate_per_s),
                   "matmul_samples_s": list(runs.matmul.samples_s),
                   "matmul_bf16_sustained_flops_per_s": None, "matmul_sustained_samples_s": None}
    if runs.matmul_sustained is not None:
        card_limits["matmul_bf16_sustained_flops_per_s"] = round(runs.matmul_sustained.rate_per_s)
        card_limits["matmul_sustained_samples_s"] = list(runs.matmul_sustained.samples_s)
    records = [_run_record(runs, run, name="tenon LLM.generate", baseline=no_baseline(), card_limits=card_limits)
               for run in runs.runs]
    if runs.ours_on_hf_shape is not None and runs.hf is not None:
        hf_name = f"hf-transformers-generate {runs.dtype} {runs.hf.shape}"
        hf_value = runs.hf.output_tokens_per_s
        ours = runs.ours_on_hf_shape
        baseline = {"name": hf_name + ", same process", "value": round(hf_value, 3),
                    "ratio": round(ours.output_tokens_per_s / hf_value, 3)}
        records.append(_run_record(runs, ours, name=f"tenon LLM.generate {runs.hf.shape}", baseline=baseline,
                                   card_limits=card_limits))
        records.append(result_record(
            workload="hf-baseline", model=runs.model, value=hf_value, unit="output tokens/s",
            baseline=no_baseline(), limit=None,
            extra={"name": hf_name, "dtype": runs.dtype, **attrs.asdict(runs.hf.shape),
                   "samples_s": list(runs.hf.samples_s), "card_limits": card_limits},
        ))
    return records


def offline_summary_lines(records: list[dict[str, Any]]) -> list[str]:
    from tenon.cli.table import format_table

    first = records[0]
    card_limits = first["card_limits"]
    sustained_flops_per_s = card_limits.get("matmul_bf16_sustained_flops_per_s")
    sustained = ("sustained not measured" if sustained_flops_per_s is None
                 else f"{sustained_flops_per_s / 1e12:.1f} TFLOP/s sustained")
    lines = [f"offline on {first['card']}: {first['model']}, {first['dtype']}",
             f"  copy bandwidth {card_limits['copy_bandwidth_bytes_per_s'] / 1e12:.3f} TB/s; bf16 matmul "
             f"{card_limits['matmul_bf16_flops_per_s'] / 1e12:.1f} TFLOP/s burst, {sustained}"]
    rows = []
    for record in records:
        limit = record["limit"]
        num_prompts = record.get("num_prompts", record.get("batch_size"))
        shape = f"{num_prompts}x{record['input_len']}x{record['output_len']}"
        ratio = record["baseline"]["ratio"]
        of_sustained = record.get("fraction_of_sustained_limit")
        rows.append([
            record["workload"], record["name"], shape, f"{record['value']:.1f}",
            "-" if limit is None else f"{limit['value']:.1f}",
            "-" if record["fraction_of_limit"] is None else f"{record['fraction_of_limit']:.3f}",
            "-" if limit is None else f"{record['fraction_of_serial_limit']:.3f}",
            "-" if of_sustained is None else f"{of_sustained:.3f}",
            "-" if ratio is None else f"{ratio:.2f}",
        ])
    headers = ["workload", "run", "prompts x in x out", "out tok/s", "limit tok/s", "of limit", "of serial",
               "of sustained", "vs HF"]
    return lines + format_table(headers, rows)
