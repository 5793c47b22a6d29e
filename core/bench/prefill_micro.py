"""Prefill attention alone, one layer's call at a time: its rate against the card's matmul rate.

Prefill attention is compute-bound, so its limit is the bf16 matmul rate measured in the same
process (`gpu_limits.measure_matmul_rate`), as the offline limit model uses. For each (prompt
length, number of prompts) the benchmark builds a step of whole prompts, each after
`cached_len` tokens already in the cache (a chunk after a prefix), over rotating K/V buffers in
the engine's layout (`attention_micro.make_step_buffers`), checks the backend against the
reference on a small prefill step, and times one `forward` a layer (the write of the new K/V
included, as the engine's step does) by cycling through the buffers, in a CUDA graph when the
backend supports capture.

FLOPs per call: two matmuls (scores and the weighted sum of values) of 2 x head_size FLOPs for
every (query head, query token, key) pair a causal step attends: per prompt of L new tokens
after C cached ones, L x C + L (L + 1) / 2 pairs a head. Masked halves of tiles are not counted.
"""

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
    make_step_buffers,
    num_buffers_for,
    time_layer_calls,
)
from tenon.bench.attention_micro_run import FREE_MEMORY_SHARE, model_label, resolve_use_graph
from tenon.bench.device_memory import free_device_memory
from tenon.bench.gpu_limits import MATMUL_SIZE, RateMeasurement, measure_matmul_rate
from tenon.spec.attention import AttentionBackendConfig

WORKLOAD = "prefill-attention"


@attrs.frozen(kw_only=True)
class PrefillSettings:
    prompt_lens: tuple[int, ...] = (512, 1024, 4096)
    num_prompts: tuple[int, ...] = (8,)
    cached_len: int = 0  # tokens of each prompt already in the cache (a chunk after a prefix)
    min_total_bytes: int = DEFAULT_MIN_TOTAL_BYTES
    max_total_bytes: int | None = None  # None: half the free device memory on CUDA, no cap on the CPU
    min_num_buffers: int = 2
    num_warmup: int = 2
    num_repeats: int = 10
    use_graph: bool | None = None  # None: when the backend declares graph support, on CUDA
    matmul_size: int = MATMUL_SIZE
    seed: int = 0

    def __attrs_post_init__(self) -> None:
        if not self.prompt_lens or not self.num_prompts or min(*self.prompt_lens, *self.num_prompts) < 1:
            raise ValueError("give at least one --prompt-lens and one --num-prompts value, each at least 1")
        if self.cached_len < 0:
            raise ValueError(f"--cached-len must be at least 0, got {self.cached_len}")
        if self.min_num_buffers < 1 or self.num_repeats < 1 or self.num_warmup < 0:
            raise ValueError("--min-num-buffers and --num-repeats must be at least 1, --num-warmup at least 0")

    @property
    def model_len(self) -> int:
        return self.cached_len + max(self.prompt_lens)


def attended_pairs(prompt_len: int, cached_len: int) -> int:
    """(query token, key) pairs one head of a causal prompt attends: every cached key, and the
    new keys up to and including its own position."""
    return prompt_len * cached_len + prompt_len * (prompt_len + 1) // 2


def prefill_flops(shape: AttentionShape, *, num_prompts: int, prompt_len: int, cached_len: int) -> int:
    return 4 * shape.num_heads * shape.head_size * num_prompts * attended_pairs(prompt_len, cached_len)


@attrs.frozen(kw_only=True)
class PrefillResult:
    prompt_len: int
    num_prompts: int
    num_buffers: int
    buffers_total_bytes: int
    flops_per_call: int
    ours: CallTiming
    baseline: CallTiming | None


@attrs.frozen(kw_only=True)
class PrefillRun:
    shape: AttentionShape
    settings: PrefillSettings
    choice: BackendChoice
    baseline_choice: BackendChoice | None
    device: str
    matmul: RateMeasurement
    check_max_abs_errors: dict[str, float]
    results: tuple[PrefillResult, ...]


def run_prefill_micro(choice: BackendChoice, shape: AttentionShape, settings: PrefillSettings,
                      device: torch.device, *, baseline: BackendChoice | None = None) -> PrefillRun:
    matmul = measure_matmul_rate(device, size=settings.matmul_size, dtype=getattr(torch, shape.dtype))
    max_tokens = max(settings.prompt_lens) * max(settings.num_prompts)
    config = AttentionBackendConfig(device=str(device), dtype=shape.dtype, block_size=shape.block_size,
                                    num_layers=1, max_num_reqs=max(settings.num_prompts),
                                    max_num_tokens=max_tokens, max_model_len=settings.model_len)
    choices = (choice,) if baseline is None else (choice, baseline)
    errors = {each.name: check_against_reference(each, config, num_heads=shape.num_heads,
                                                  num_kv_heads=shape.num_kv_heads, head_size=shape.head_size,
                                                  seed=settings.seed, prefill=True) for each in choices}
    graphs = [resolve_use_graph(each, settings.use_graph if each is choice else None, device) for each in choices]
    max_total_bytes = settings.max_total_bytes
    if max_total_bytes is None and device.type == "cuda":
        max_total_bytes = int(torch.cuda.mem_get_info(device)[0] * FREE_MEMORY_SHARE)
    results = []
    for prompt_len in settings.prompt_lens:
        for num_prompts in settings.num_prompts:
            seq_len = settings.cached_len + prompt_len
            num_buffers = num_buffers_for(
                shape.buffer_bytes(num_prompts, seq_len), min_total_bytes=settings.min_total_bytes,
                min_num_buffers=settings.min_num_buffers, max_total_bytes=max_total_bytes)
            buffers = make_step_buffers(shape, query_lens=[prompt_len] * num_prompts,
                                        seq_lens=[seq_len] * num_prompts, num_buffers=num_buffers,
                                        device=device, seed=settings.seed)
            timings = [time_layer_calls(each, config, shape, buffers, use_graph=use_graph,
                                        num_warmup=settings.num_warmup, num_repeats=settings.num_repeats)
                       for each, use_graph in zip(choices, graphs, strict=True)]
            results.append(PrefillResult(
                prompt_len=prompt_len, num_prompts=num_prompts, num_buffers=num_buffers,
                buffers_total_bytes=buffers.total_bytes,
                flops_per_call=prefill_flops(shape, num_prompts=num_prompts, prompt_len=prompt_len,
                                             cached_len=settings.cached_len),
                ours=timings[0], baseline=timings[1] if baseline is not None else None))
            del buffers
            free_device_memory()
    return PrefillRun(shape=shape, settings=settings, choice=choice, baseline_choice=baseline, device=str(device),
                      matmul=matmul, check_max_abs_errors=errors, results=tuple(results))


def prefill_records(run: PrefillRun) -> list[dict[str, Any]]:
    """One BENCHMARKS.md record per shape: achieved TFLOP/s against the matmul rate."""
    from tenon.bench.report import result_record

    size = run.settings.matmul_size
    limit = {
        # Four significant digits: a small matmul on a CPU runs at well under 1 GFLOP/s, which
        # three decimals of TFLOP/s would round to a zero limit.
        "value": float(f"{run.matmul.rate_per_s / 1e12:.4g}"),
        "unit": "TFLOP/s",
        "how": (f"[{size}, {size}] @ [{size}, {size}] in {run.shape.dtype}, median of "
                f"{len(run.matmul.samples_s)}, same process"),
    }
    records = []
    for result in run.results:
        ours_tflops = result.flops_per_call / result.ours.median_s / 1e12
        records.append(result_record(
            workload=WORKLOAD, model=model_label(run.shape), value=ours_tflops, unit="TFLOP/s",
            baseline=baseline_fields(result.ours, result.baseline, work_per_call=result.flops_per_call, scale=1e12),
            limit=limit,
            extra={
                **layer_call_fields(choice=run.choice, device=run.device, shape=run.shape,
                                    check_max_abs_errors=run.check_max_abs_errors, ours=result.ours,
                                    num_buffers=result.num_buffers, buffers_total_bytes=result.buffers_total_bytes),
                "prompt_len": result.prompt_len, "num_prompts": result.num_prompts,
                "cached_len": run.settings.cached_len,
                "flops_per_call": result.flops_per_call,
                "flops_how": "4 x heads x head_size per attended (query, key) pair, causal",
                "matmul_samples_s": list(run.matmul.samples_s),
            },
        ))
    return records


def prefill_summary_lines(records: list[dict[str, Any]]) -> list[str]:
    from tenon.cli.table import format_table

    first = records[0]
    lines = [f"{first['workload']} on {first['card']}: {first['model']}; backend {first['backend']}; "
             f"{first['cached_len']} cached tokens a prompt; matmul rate {first['limit']['value']:.1f} TFLOP/s"]
    rows = []
    for record in records:
        rows.append([
            str(record["prompt_len"]), str(record["num_prompts"]), f"{record['time_per_call_us']:.1f}",
            f"{record['value']:.1f}", f"{record['fraction_of_limit']:.3f}", *baseline_columns(record),
        ])
    headers = ["prompt", "prompts", "us/layer", "TFLOP/s", "of matmul", "baseline us", "vs baseline"]
    return lines + format_table(headers, rows)
