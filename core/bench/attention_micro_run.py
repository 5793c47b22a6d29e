"""The decode-attention microbenchmark end to end: the card's copy bandwidth, the correctness
check, then every (context length, batch size) for our backend and an optional baseline
backend on the same buffers; and the BENCHMARKS.md records and table of the results."""

from __future__ import annotations

from typing import Any

import attrs
import torch

from tenon.bench.attention_choice import BackendChoice, check_against_reference
from tenon.bench.attention_micro import (
    DEFAULT_MIN_TOTAL_BYTES,
    AttentionShape,
    CallTiming,
    baseline_columns,
    baseline_fields,
    layer_call_fields,
    make_decode_buffers,
    num_buffers_for,
    time_layer_calls,
)
from tenon.bench.device_memory import free_device_memory
from tenon.bench.gpu_limits import COPY_SIZE_BYTES, RateMeasurement, measure_copy_bandwidth
from tenon.spec.attention import AttentionBackendConfig

WORKLOAD = "decode-attention"
# Without a cap, buffers may take this share of the free device memory (the rest is left for
# a baseline backend's gathers and the graph's pool).
FREE_MEMORY_SHARE = 0.5


@attrs.frozen(kw_only=True)
class MicroSettings:
    context_lens: tuple[int, ...] = (4096, 32768)
    batch_sizes: tuple[int, ...] = (1, 64)
    min_total_bytes: int = DEFAULT_MIN_TOTAL_BYTES
    max_total_bytes: int | None = None  # None: half the free device memory on CUDA, no cap on the CPU
    min_num_buffers: int = 2
    num_warmup: int = 3
    num_repeats: int = 20
    max_model_len: int | None = None  # the backends' config; None: the longest context
    use_graph: bool | None = None  # None: when the backend declares graph support, on CUDA
    copy_size_bytes: int = COPY_SIZE_BYTES
    seed: int = 0

    def __attrs_post_init__(self) -> None:
        if not self.context_lens or not self.batch_sizes or min(*self.context_lens, *self.batch_sizes) < 1:
            raise ValueError("give at least one --context-lens and one --batch-sizes value, each at least 1")
        if self.max_model_len is not None and self.max_model_len < max(self.context_lens):
            raise ValueError(f"--max-model-len {self.max_model_len} is shorter than the longest context "
                             f"{max(self.context_lens)}; raise it or shorten --context-lens")
        if self.min_num_buffers < 1 or self.num_repeats < 1 or self.num_warmup < 0:
            raise ValueError("--min-num-buffers and --num-repeats must be at least 1, --num-warmup at least 0")

    @property
    def model_len(self) -> int:
        return self.max_model_len or max(self.context_lens)


@attrs.frozen(kw_only=True)
class ShapeResult:
    context_len: int
    batch_size: int
    num_buffers: int
    buffers_total_bytes: int
    bytes_per_call: int
    ours: CallTiming
    baseline: CallTiming | None


@attrs.frozen(kw_only=True)
class MicroRun:
    shape: AttentionShape
    settings: MicroSettings
    choice: BackendChoice
    baseline_choice: BackendChoice | None
    device: str
    bandwidth: RateMeasurement
    check_max_abs_errors: dict[str, float]  # backend name -> error on the correctness check
    l2_cache_bytes: int | None
    results: tuple[ShapeResult, ...]


def resolve_use_graph(choice: BackendChoice, requested: bool | None, device: torch.device) -> bool:
    if requested is None:
        return device.type == "cuda" and choice.supports_graphs is True
    if requested and device.type != "cuda":
        raise ValueError("--cuda-graph needs a CUDA device")
    if requested and choice.supports_graphs is False:
        raise ValueError(f"attention backend {choice.name} does not declare graph support; drop --cuda-graph")
    return requested


def run_attention_micro(choice: BackendChoice, shape: AttentionShape, settings: MicroSettings,
                        device: torch.device, *, baseline: BackendChoice | None = None) -> MicroRun:
    bandwidth = measure_copy_bandwidth(device, size_bytes=settings.copy_size_bytes)
    max_batch = max(settings.batch_sizes)
    config = AttentionBackendConfig(device=str(device), dtype=shape.dtype, block_size=shape.block_size,
                                    num_layers=1, max_num_reqs=max_batch, max_num_tokens=max_batch,
                                    max_model_len=settings.model_len)
    choices = (choice,) if baseline is None else (choice, baseline)
    errors = {each.name: check_against_reference(each, config, num_heads=shape.num_heads,
                                                  num_kv_heads=shape.num_kv_heads, head_size=shape.head_size,
                                                  seed=settings.seed) for each in choices}
    graphs = [resolve_use_graph(each, settings.use_graph if each is choice else None, device) for each in choices]
    max_total_bytes = settings.max_total_bytes
    if max_total_bytes is None and device.type == "cuda":
        max_total_bytes = int(torch.cuda.mem_get_info(device)[0] * FREE_MEMORY_SHARE)
    results = []
    for context_len in settings.context_lens:
        for batch_size in settings.batch_sizes:
            num_buffers = num_buffers_for(
                shape.buffer_bytes(batch_size, context_len), min_total_bytes=settings.min_total_bytes,
                min_num_buffers=settings.min_num_buffers, max_total_bytes=max_total_bytes)
            buffers = make_decode_buffers(shape, batch_size=batch_size, context_len=context_len,
                                          num_buffers=num_buffers, device=device, seed=settings.seed)
            timings = [time_layer_calls(each, config, shape, buffers, use_graph=use_graph,
                                        num_warmup=settings.num_warmup, num_repeats=settings.num_repeats)
                       for each, use_graph in zip(choices, graphs, strict=True)]
            results.append(ShapeResult(
                context_len=context_len, batch_size=batch_size, num_buffers=num_buffers,
                buffers_total_bytes=buffers.total_bytes,
                bytes_per_call=shape.kv_bytes_read(batch_size, context_len) + shape.query_output_bytes(batch_size),
                ours=timings[0], baseline=timings[1] if baseline is not None else None))
            del buffers
            free_device_memory()
    l2_cache_bytes = (getattr(torch.cuda.get_device_properties(device), "L2_cache_size", None)
                      if device.type == "cuda" else None)
    return MicroRun(shape=shape, settings=settings, choice=choice, baseline_choice=baseline, device=str(device),
                    bandwidth=bandwidth, check_max_abs_errors=errors, l2_cache_bytes=l2_cache_bytes,
                    results=tuple(results))


def model_label(shape: AttentionShape) -> str:
    described = (f"attention layer: {shape.num_heads} heads, {shape.num_kv_heads} KV heads, head "
                 f"{shape.head_size}, block {shape.block_size}, {shape.dtype}")
    return f"llama-3.1-8b {described}" if shape == AttentionShape() else described


def micro_records(run: MicroRun) -> list[dict[str, Any]]:
    """One BENCHMARKS.md record per shape: achieved GB/s against the copy bandwidth."""
    from tenon.bench.report import result_record

    copy_gb_per_s = run.bandwidth.rate_per_s / 1e9
    limit = {
        "value": round(copy_gb_per_s, 3),
        "unit": "GB/s",
        "how": (f"device copy of {run.bandwidth.work_per_sample / 2 / 2**30:.3g} GiB, bytes read + written, "
                f"median of {len(run.bandwidth.samples_s)}, same process"),
    }
    records = []
    for result in run.results:
        ours_gb_per_s = result.bytes_per_call / result.ours.median_s / 1e9
        records.append(result_record(
            workload=WORKLOAD, model=model_label(run.shape), value=ours_gb_per_s, unit="GB/s",
            baseline=baseline_fields(result.ours, result.baseline, work_per_call=result.bytes_per_call, scale=1e9),
            limit=limit,
            extra={
                **layer_call_fields(choice=run.choice, device=run.device, shape=run.shape,
                                    check_max_abs_errors=run.check_max_abs_errors, ours=result.ours,
                                    num_buffers=result.num_buffers, buffers_total_bytes=result.buffers_total_bytes),
                "context_len": result.context_len, "batch_size": result.batch_size,
                "bytes_per_call": result.bytes_per_call,
                "bytes_how": "K and V of every context token once + query + output",
                "l2_cache_bytes": run.l2_cache_bytes, "max_model_len": run.settings.model_len,
                "copy_samples_s": list(run.bandwidth.samples_s),
            },
        ))
    return records


def micro_summary_lines(records: list[dict[str, Any]]) -> list[str]:
    from tenon.cli.table import format_table

    first = records[0]
    lines = [f"{first['workload']} on {first['card']}: {first['model']}; backend {first['backend']}; "
             f"copy bandwidth {first['limit']['value']:.1f} GB/s"]
    rows = []
    for record in records:
        rows.append([
            str(record["context_len"]), str(record["batch_size"]),
            f"{record['num_buffers']} x {_size_text(record['buffers_total_bytes'] // record['num_buffers'])}",
            f"{record['time_per_call_us']:.1f}", f"{record['value']:.1f}", f"{record['fraction_of_limit']:.3f}",
            *baseline_columns(record),
        ])
    headers = ["context", "batch", "buffers", "us/layer", "GB/s", "of copy bw", "baseline us", "vs baseline"]
    return lines + format_table(headers, rows)


def _size_text(num_bytes: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.3g} {unit}"
    return f"{num_bytes} B"
