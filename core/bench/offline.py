"""The offline workloads (offline-1k, offline-128) against their limit, in one process.

Order matters for memory, as in the decode-1 report: the card's copy bandwidth and matmul rate
are measured first on an empty card; then one engine runs every workload (and, optionally, the
HF baseline's batch shape); it is shut down and its memory handed back before HF's model is
built. Each workload's limit comes from `tenon.bench.offline_limit` with the engine's own
scheduler limits (max_num_seqs, tokens per step, KV cache capacity), the same prompt count,
and the two rates measured here, so `fraction_of_limit` and the time over the floor come from
one call on one card. Beside the burst matmul rate the limit uses, a sustained one (the same
matmul back to back for `matmul_sustain_s`, `gpu_limits`) gives a second limit with the rate a
power-capped card holds over a long run.
"""

from __future__ import annotations

import random
import time
from typing import Any

import attrs
import torch

from tenon.bench.device_memory import free_device_memory
from tenon.bench.gpu_limits import (
    COPY_SIZE_BYTES,
    MATMUL_SIZE,
    SUSTAIN_S,
    RateMeasurement,
    measure_copy_bandwidth,
    measure_matmul_rate,
    measure_sustained_matmul_rate,
)
from tenon.bench.hf_baseline import GenerateRate, GenerateShape, hf_generate_rates
from tenon.bench.latency import random_prompts
from tenon.bench.offline_limit import ModelCosts
from tenon.bench.startup_timing import StartupTiming, start_timed


@attrs.frozen(kw_only=True)
class OfflineShape:
    workload: str
    num_prompts: int
    input_len: int
    output_len: int


# BENCHMARKS.md's offline workloads at their full prompt counts.
OFFLINE_SHAPES = {
    "offline-1k": OfflineShape(workload="offline-1k", num_prompts=1000, input_len=1000, output_len=1000),
    "offline-128": OfflineShape(workload="offline-128", num_prompts=5000, input_len=128, output_len=128),
}


@attrs.frozen(kw_only=True)
class OfflineOptions:
    shapes: tuple[OfflineShape, ...]
    hf_shape: GenerateShape | None = None  # ours and HF generate() on it; None skips HF
    hf_num_iters: int = 2
    copy_size_bytes: int = COPY_SIZE_BYTES
    matmul_size: int = MATMUL_SIZE
    matmul_sustain_s: float | None = SUSTAIN_S  # None skips the sustained matmul rate
    seed: int = 0


@attrs.frozen(kw_only=True)
class ThroughputRun:
    shape: OfflineShape
    elapsed_s: float
    num_output_tokens: int

    @property
    def output_tokens_per_s(self) -> float:
        return self.num_output_tokens / self.elapsed_s

    @property
    def total_tokens_per_s(self) -> float:
        return (self.num_output_tokens + self.shape.num_prompts * self.shape.input_len) / self.elapsed_s


@attrs.frozen(kw_only=True)
class EngineLimits:
    """The engine's scheduling limits, which the limit model replays."""

    max_num_seqs: int
    max_num_batched_tokens: int
    kv_capacity_tokens: int
    block_size: int
    slots: dict[str, str]  # what filled each plugin slot (attention backend, ...)
    notes: tuple[str, ...]  # the start-up log's notes (KV cache size, graphs, ...)


@attrs.frozen(kw_only=True)
class OfflineRuns:
    model: str
    dtype: str
    hf_config: Any
    bandwidth: RateMeasurement
    matmul: RateMeasurement
    engine: EngineLimits
    startup: StartupTiming
    runs: tuple[ThroughputRun, ...]
    ours_on_hf_shape: ThroughputRun | None
    hf: GenerateRate | None
    matmul_sustained: RateMeasurement | None = None


def run_offline_batch(llm: Any, shape: OfflineShape, rng: random.Random) -> ThroughputRun:
    """All of `shape`'s prompts in one `generate()` call, greedy with ignore_eos, timed end to end.
    One `rng` serves every batch of a process, so no batch repeats another's prompt prefixes
    (which the prefix cache would skip)."""
    from tenon.sampling.params import SamplingParams

    prompts = random_prompts(rng, shape.num_prompts, shape.input_len, int(llm.engine.hf_config.vocab_size))
    params = SamplingParams(temperature=0.0, max_tokens=shape.output_len, ignore_eos=True, detokenize=False)
    start_s = time.perf_counter()
    outputs = llm.generate(prompts, params)
    elapsed_s = time.perf_counter() - start_s
    made = [len(output.outputs[0].token_ids) for output in outputs]
    if made != [shape.output_len] * shape.num_prompts:
        raise RuntimeError(f"asked for {shape.output_len} tokens per request, got {sorted(set(made))}")
    return ThroughputRun(shape=shape, elapsed_s=elapsed_s, num_output_tokens=sum(made))


def engine_limits(llm: Any) -> EngineLimits:
    config = llm.config
    startup = llm.engine.startup
    return EngineLimits(
        max_num_seqs=config.scheduler.max_num_seqs,
        max_num_batched_tokens=config.scheduler.max_num_batched_tokens,
        kv_capacity_tokens=(config.cache.num_blocks - 1) * config.cache.block_size,  # block 0 is the null block
        block_size=config.cache.block_size, slots=dict(startup.slots), notes=tuple(startup.notes),
    )


def run_offline(engine_args: dict[str, Any], options: OfflineOptions) -> OfflineRuns:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bandwidth = measure_copy_bandwidth(device, size_bytes=options.copy_size_bytes)
    matmul = measure_matmul_rate(device, size=options.matmul_size)
    matmul_sustained = None
    if options.matmul_sustain_s is not None:
        matmul_sustained = measure_sustained_matmul_rate(device, size=options.matmul_size,
                                                         duration_s=options.matmul_sustain_s)
    llm, startup = start_timed(engine_args)
    model, dtype, hf_config = llm.config.model.served_model_name, llm.config.model.dtype, llm.engine.hf_config
    limits = engine_limits(llm)
    # The limit model refuses some models (mixtures of experts): find out before the long runs.
    ModelCosts.from_config(hf_config, torch.empty(0, dtype=getattr(torch, dtype)).element_size())
    rng = random.Random(options.seed)
    run_offline_batch(llm, OfflineShape(workload="warm-up", num_prompts=1, input_len=16, output_len=4), rng)
    runs = tuple(run_offline_batch(llm, shape, rng) for shape in options.shapes)
    ours_on_hf_shape = None
    if options.hf_shape is not None:
        hf_shape = options.hf_shape
        ours_on_hf_shape = run_offline_batch(llm, OfflineShape(
            workload="hf-baseline", num_prompts=hf_shape.batch_size, input_len=hf_shape.input_len,
            output_len=hf_shape.output_len), rng)
    llm.shutdown()
    del llm
    free_device_memory()
    hf = None
    if options.hf_shape is not None:
        [hf] = hf_generate_rates(hf_config, (options.hf_shape,), dtype=getattr(torch, dtype), device=device,
                                 num_iters=options.hf_num_iters)
    return OfflineRuns(model=model, dtype=dtype, hf_config=hf_config, bandwidth=bandwidth, matmul=matmul,
                       matmul_sustained=matmul_sustained, engine=limits, startup=startup, runs=runs,
                       ours_on_hf_shape=ours_on_hf_shape, hf=hf)
