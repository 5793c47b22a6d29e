"""Decode attention alone, one layer's call at a time, over KV caches the L2 cache cannot hold.

For each (context length, batch size) the benchmark builds one KV allocation in the engine's
layout with several layers, each layer a rotating buffer, every byte random:

    kv_cache: [num_blocks, num_buffers, 2, block_size, num_kv_heads, head_size]
    buffer i = kv_cache[:, i]   (a strided layer view, as the engine hands each layer)
    block 0 is the null block; request r owns a shuffled set of the other blocks, the same
    block table for every buffer (as every layer shares the engine's block table)

Enough buffers are made that together they exceed `min_total_bytes` (1 GiB: 20 times an H100's
50 MB L2), at least `min_num_buffers`, and no more than memory allows. One timed cycle calls
the backend's `forward` once per buffer, in order (each call also writes the step's new K/V
row, as a decode step does), so no call finds its K/V in L2. With a graph-capable backend on
CUDA the cycle is captured in one CUDA graph and replayed, which removes the Python and launch
overhead the engine's decode graphs also remove; otherwise the cycle runs eagerly. CUDA events
(wall clock on the CPU) time each cycle; the time per call is the median cycle over its calls.

Bytes per call: the K and V of every context token read once, plus the query read and the
output written; achieved bandwidth over the copy bandwidth measured in the same process is the
fraction of the limit.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any

import attrs
import torch

from tenon.bench.attention_choice import BackendChoice
from tenon.bench.gpu_limits import time_op_s
from tenon.spec.attention import AttentionBackendConfig, AttentionLayer, AttentionMetadata

DEFAULT_MIN_TOTAL_BYTES = 1 << 30


@attrs.frozen(kw_only=True)
class AttentionShape:
    """One attention layer's shape (default: llama-3.1-8b in bf16, 16-token blocks)."""

    num_heads: int = 32
    num_kv_heads: int = 8
    head_size: int = 128
    block_size: int = 16
    dtype: str = "bfloat16"

    def __attrs_post_init__(self) -> None:
        if min(self.num_heads, self.num_kv_heads, self.head_size, self.block_size) < 1:
            raise ValueError(f"every size of the attention shape must be at least 1, got {self}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"--num-heads {self.num_heads} must be a multiple of --num-kv-heads {self.num_kv_heads}")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"--dtype must be float32, bfloat16 or float16, got {self.dtype!r}")

    @property
    def element_bytes(self) -> int:
        return torch.empty(0, dtype=getattr(torch, self.dtype)).element_size()

    def kv_bytes_read(self, batch_size: int, context_len: int) -> int:
        """K and V of every context token of every request, once."""
        return batch_size * context_len * self.num_kv_heads * self.head_size * 2 * self.element_bytes

    def query_output_bytes(self, batch_size: int) -> int:
        return 2 * batch_size * self.num_heads * self.head_size * self.element_bytes

    def buffer_bytes(self, batch_size: int, context_len: int) -> int:
        """One layer's share of the allocation: every block of every request, and the null block."""
        num_blocks = 1 + batch_size * math.ceil(context_len / self.block_size)
        return num_blocks * 2 * self.block_size * self.num_kv_heads * self.head_size * self.element_bytes

    def layer(self, layer_index: int) -> AttentionLayer:
        return AttentionLayer(layer_index=layer_index, num_heads=self.num_heads, num_kv_heads=self.num_kv_heads,
                              head_size=self.head_size, scale=self.head_size**-0.5)


def num_buffers_for(buffer_bytes: int, *, min_total_bytes: int, min_num_buffers: int,
                    max_total_bytes: int | None) -> int:
    """Buffers that together reach `min_total_bytes` (and `min_num_buffers`), within memory."""
    wanted = max(min_num_buffers, math.ceil(min_total_bytes / buffer_bytes))
    if max_total_bytes is None:
        return wanted
    fitting = max_total_bytes // buffer_bytes
    if fitting < 1:
        raise ValueError(f"one KV buffer takes {buffer_bytes / 2**30:.2f} GiB but only "
                         f"{max_total_bytes / 2**30:.2f} GiB may be used; lower the context length or batch size")
    return min(wanted, fitting)


@attrs.frozen(kw_only=True)
class StepBuffers:
    """One step's inputs over `num_buffers` layers of K/V (decode or prefill)."""

    kv_cache: torch.Tensor  # [num_blocks, num_buffers, 2, block_size, num_kv_heads, head_size]
    query: torch.Tensor  # [num_tokens, num_heads, head_size]
    key: torch.Tensor  # [num_tokens, num_kv_heads, head_size], this step's new rows
    value: torch.Tensor  # [num_tokens, num_kv_heads, head_size]
    metadata: AttentionMetadata

    @property
    def num_buffers(self) -> int:
        return int(self.kv_cache.shape[1])

    @property
    def total_bytes(self) -> int:
        return self.kv_cache.numel() * self.kv_cache.element_size()

    def kv_layer(self, index: int) -> torch.Tensor:
        return self.kv_cache[:, index]  # [num_blocks, 2, block_size, num_kv_heads, head_size]


def make_step_buffers(shape: AttentionShape, *, query_lens: list[int], seq_lens: list[int], num_buffers: int,
                      device: torch.device, seed: int = 0) -> StepBuffers:
    """Random K/V in `num_buffers` layers of one allocation; request r computes the last
    `query_lens[r]` of its `seq_lens[r]` tokens, whose blocks are shuffled over the cache."""
    from tenon.testing.paged_runner import build_metadata

    dtype = getattr(torch, shape.dtype)
    blocks_per_request = [math.ceil(seq_len / shape.block_size) for seq_len in seq_lens]
    num_blocks = 1 + sum(blocks_per_request)
    device_generator = torch.Generator(device=device).manual_seed(seed)

    def randn(*size: int) -> torch.Tensor:
        return torch.randn(size, generator=device_generator, dtype=dtype, device=device)

    kv_cache = randn(num_blocks, num_buffers, 2, shape.block_size, shape.num_kv_heads, shape.head_size)
    block_ids = (torch.randperm(num_blocks - 1, generator=torch.Generator().manual_seed(seed)) + 1).tolist()
    block_tables, start = [], 0
    for count in blocks_per_request:
        block_tables.append(block_ids[start : start + count])
        start += count
    metadata, _ = build_metadata(query_lens, seq_lens, block_tables, shape.block_size, device)
    num_tokens = sum(query_lens)
    return StepBuffers(
        kv_cache=kv_cache, query=randn(num_tokens, shape.num_heads, shape.head_size),
        key=randn(num_tokens, shape.num_kv_heads, shape.head_size),
        value=randn(num_tokens, shape.num_kv_heads, shape.head_size), metadata=metadata,
    )


def make_decode_buffers(shape: AttentionShape, *, batch_size: int, context_len: int, num_buffers: int,
                        device: torch.device, seed: int = 0) -> StepBuffers:
    """A decode step: `batch_size` requests of `context_len` tokens, the last one this step's."""
    return make_step_buffers(shape, query_lens=[1] * batch_size, seq_lens=[context_len] * batch_size,
                             num_buffers=num_buffers, device=device, seed=seed)


@attrs.frozen(kw_only=True)
class CallTiming:
    backend: str
    use_graph: bool
    per_call_samples_s: tuple[float, ...]  # one per timed cycle: cycle time / buffers

    @property
    def median_s(self) -> float:
        return statistics.median(self.per_call_samples_s)

    @property
    def method(self) -> str:
        return "CUDA graph replay of one cycle" if self.use_graph else "eager cycle"


def baseline_fields(ours: CallTiming, baseline: CallTiming | None, *, work_per_call: float,
                    scale: float) -> dict[str, Any]:
    """A record's `baseline`: another backend timed on the same buffers, its rate (work per
    second / `scale`, the record's unit) and ours over it."""
    if baseline is None:
        return {"name": None, "value": None, "ratio": None}
    ours_rate = work_per_call / ours.median_s / scale
    baseline_rate = work_per_call / baseline.median_s / scale
    return {"name": f"{baseline.backend} backend, {baseline.method}, same buffers",
            "value": round(baseline_rate, 3), "ratio": round(ours_rate / baseline_rate, 3),
            "time_per_call_us": round(baseline.median_s * 1e6, 3)}


def layer_call_fields(*, choice: BackendChoice, device: str, shape: AttentionShape,
                      check_max_abs_errors: dict[str, float], ours: CallTiming, num_buffers: int,
                      buffers_total_bytes: int) -> dict[str, Any]:
    """A layer microbenchmark record's fields about the backend, its check, the buffers and how
    the time per call was taken (with its samples)."""
    return {
        "backend": choice.name, "backend_how": choice.how, "device": device,
        "time_per_call_us": round(ours.median_s * 1e6, 3),
        "samples_us": [round(sample * 1e6, 3) for sample in ours.per_call_samples_s],
        "timing": f"{ours.method}, {num_buffers} calls per cycle, median of {len(ours.per_call_samples_s)} cycles",
        "num_buffers": num_buffers, "buffers_total_bytes": buffers_total_bytes,
        "attention_shape": attrs.asdict(shape),
        "check_max_abs_error": check_max_abs_errors,
    }


def baseline_columns(record: dict[str, Any]) -> list[str]:
    """The summary table's last two columns: the baseline's time per call and our ratio."""
    baseline = record["baseline"]
    return ["-" if baseline["value"] is None else f"{baseline['time_per_call_us']:.1f}",
            "-" if baseline["ratio"] is None else f"{baseline['ratio']:.2f}"]


def time_layer_calls(choice: BackendChoice, config: AttentionBackendConfig, shape: AttentionShape,
                     buffers: StepBuffers, *, use_graph: bool, num_warmup: int, num_repeats: int) -> CallTiming:
    """Seconds per layer call, cycling through every buffer once per timed sample."""
    device = buffers.kv_cache.device
    backend = choice.backend_class(attrs.evolve(config, num_layers=buffers.num_buffers))
    layers = [shape.layer(index) for index in range(buffers.num_buffers)]

    def cycle() -> None:
        for index, layer in enumerate(layers):
            backend.forward(layer, buffers.query, buffers.key, buffers.value, buffers.kv_layer(index),
                            buffers.metadata)

    with torch.inference_mode():
        backend.prepare(buffers.metadata)
        cycle()  # compiles kernels and sizes the backend's scratch before any capture
        op: Callable[[], None] = cycle
        if use_graph:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                cycle()
            op = graph.replay
        samples_s = time_op_s(op, device, num_warmup=num_warmup, num_repeats=num_repeats)
    return CallTiming(backend=choice.name, use_graph=use_graph,
                      per_call_samples_s=tuple(sample_s / buffers.num_buffers for sample_s in samples_s))
