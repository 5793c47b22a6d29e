"""The decode-1 report: the card's limits, ours (CUDA graphs and eager) and HF `generate()`,
all in one process, so the fraction of the limit and the ratio to HF come from the same call.

Order matters for memory: the limits run first on an empty card; each engine is shut down and
its memory handed back before the next one starts, and HF's model is built last, alone.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from tenon.bench.device_memory import device_memory_in_use_bytes, free_device_memory
from tenon.bench.gpu_limits import (
    COPY_SIZE_BYTES,
    MATMUL_SIZE,
    RateMeasurement,
    decode1_limit,
    measure_copy_bandwidth,
    measure_matmul_rate,
)
from tenon.bench.hf_baseline import GenerateRate, GenerateShape, hf_generate_rates
from tenon.bench.latency import LatencyResult, LatencySettings, latency_record, run_latency
from tenon.bench.record_comparisons import no_baseline, with_comparisons
from tenon.bench.report import result_record
from tenon.bench.startup_timing import StartupTiming, start_timed
from tenon.bench.weight_bytes import decode_bytes_per_step


@attrs.frozen(kw_only=True)
class Decode1Options:
    settings: LatencySettings
    eager_modes: tuple[bool, ...] = attrs.field(default=(False, True))  # enforce_eager per run of ours
    extra_hf_shapes: tuple[GenerateShape, ...] = ()  # beside the one matching ours
    hf_num_iters: int = 2
    copy_size_bytes: int = COPY_SIZE_BYTES
    matmul_size: int = MATMUL_SIZE
    workload: str = "decode-1"

    @eager_modes.validator
    def _check_eager_modes(self, attribute: Any, value: tuple[bool, ...]) -> None:
        if not value:
            raise ValueError("run ours at least once: eager_modes is empty")


@attrs.frozen(kw_only=True)
class OurRun:
    enforce_eager: bool
    startup: StartupTiming
    result: LatencyResult
    memory_after_shutdown_bytes: int | None  # what the engine left allocated on the device


@attrs.frozen(kw_only=True)
class Decode1Runs:
    model: str
    dtype: str
    hf_config: Any
    bandwidth: RateMeasurement
    matmul: RateMeasurement
    ours: tuple[OurRun, ...]
    hf: tuple[GenerateRate, ...]


def run_decode1(engine_args: dict[str, Any], options: Decode1Options) -> Decode1Runs:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bandwidth = measure_copy_bandwidth(device, size_bytes=options.copy_size_bytes)
    matmul = measure_matmul_rate(device, size=options.matmul_size)
    ours = []
    for enforce_eager in options.eager_modes:
        llm, startup = start_timed({**engine_args, "enforce_eager": enforce_eager})
        model, dtype, hf_config = llm.config.model.served_model_name, llm.config.model.dtype, llm.engine.hf_config
        result = run_latency(llm, options.settings)
        llm.shutdown()
        del llm
        free_device_memory()
        ours.append(OurRun(enforce_eager=enforce_eager, startup=startup, result=result,
                           memory_after_shutdown_bytes=device_memory_in_use_bytes()))
    settings = options.settings
    same_shape = GenerateShape(batch_size=settings.batch_size, input_len=settings.input_len,
                               output_len=settings.output_len)
    hf = hf_generate_rates(hf_config, (same_shape, *options.extra_hf_shapes), dtype=getattr(torch, dtype),
                           device=device, num_iters=options.hf_num_iters)
    return Decode1Runs(model=model, dtype=dtype, hf_config=hf_config, bandwidth=bandwidth, matmul=matmul,
                       ours=tuple(ours), hf=tuple(hf))


def _hf_name(rate: GenerateRate, dtype: str) -> str:
    return f"hf-transformers-generate {dtype} {rate.shape}"


def decode1_records(runs: Decode1Runs, options: Decode1Options) -> list[dict[str, Any]]:
    """Ours per mode, then HF per shape; the decode-1 limit applies to batch-1 runs only."""
    dtype_bytes = torch.empty(0, dtype=getattr(torch, runs.dtype)).element_size()
    bytes_per_step = decode_bytes_per_step(runs.hf_config, dtype_bytes)
    limit = decode1_limit(runs.bandwidth, bytes_per_step)
    card = {"copy_bandwidth_bytes_per_s": round(runs.bandwidth.rate_per_s),
            "copy_samples_s": list(runs.bandwidth.samples_s),
            "matmul_bf16_flops_per_s": round(runs.matmul.rate_per_s),
            "matmul_size": options.matmul_size}
    same_shape_hf = runs.hf[0]
    records = []
    for run in runs.ours:
        record = latency_record(run.result, model=runs.model, workload=options.workload, extra={
            "dtype": runs.dtype, "enforce_eager": run.enforce_eager, "startup": run.startup.as_dict(),
            "card_limits": card, "memory_after_shutdown_bytes": run.memory_after_shutdown_bytes,
        })
        decode_rate = run.result.decode_tokens_per_s
        record["decode_fraction_of_limit"] = (
            None if decode_rate is None or options.settings.batch_size != 1
            else round(decode_rate / limit["value"], 4))
        records.append(with_comparisons(
            record, baseline_name=_hf_name(same_shape_hf, runs.dtype),
            baseline_value=same_shape_hf.output_tokens_per_s,
            limit=limit if options.settings.batch_size == 1 else None))
    for rate in runs.hf:
        hf_record = result_record(
            workload="hf-baseline", model=runs.model, value=rate.output_tokens_per_s, unit="output tokens/s",
            baseline=no_baseline(), limit=None,
            extra={"name": _hf_name(rate, runs.dtype), "dtype": runs.dtype, **attrs.asdict(rate.shape),
                   "samples_s": list(rate.samples_s), "card_limits": card},
        )
        records.append(with_comparisons(hf_record, baseline_name=None, baseline_value=None,
                                        limit=limit if rate.shape.batch_size == 1 else None))
    return records


def summary_lines(records: list[dict[str, Any]]) -> list[str]:
    """The short table printed last: one row per record."""
    from tenon.cli.table import format_table

    first = records[0]
    limit = first["limit"]
    card_limits = first["card_limits"]
    lines = [
        f"{first['workload']} on {first['card']}: {first['model']}, {first['dtype']}",
        f"  copy bandwidth {card_limits['copy_bandwidth_bytes_per_s'] / 1e12:.3f} TB/s; "
        f"bf16 matmul {card_limits['matmul_bf16_flops_per_s'] / 1e12:.1f} TFLOP/s"
        + (f"; {limit['bytes_per_step'] / 1e9:.2f} GB per step; limit {limit['value']:.1f} tok/s" if limit else ""),
    ]
    rows = []
    for record in records:
        if record["workload"] == "hf-baseline":
            name = record["name"]
            ttft = tpot = decode = ratio = "-"
        else:
            latency = record["latency"]
            name = "tenon --enforce-eager" if record["enforce_eager"] else "tenon"
            ttft = f"{latency['mean_ttft_ms']:.1f}"
            tpot = "-" if latency["tpot_ms"] is None else f"{latency['tpot_ms']:.2f}"
            decode = "-" if latency["decode_tokens_per_s"] is None else f"{latency['decode_tokens_per_s']:.1f}"
            ratio = "-" if record["baseline"]["ratio"] is None else f"{record['baseline']['ratio']:.2f}"
        fraction = "-" if record["fraction_of_limit"] is None else f"{record['fraction_of_limit']:.3f}"
        rows.append([name, f"{record['value']:.1f}", decode, ttft, tpot, fraction, ratio])
    headers = ["run", "out tok/s", "decode tok/s", "TTFT ms", "TPOT ms", "of limit", "vs HF"]
    return lines + format_table(headers, rows)
