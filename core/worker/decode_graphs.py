"""Decode steps captured as device graphs, one per padded batch size, replayed step after step.

A decode step of a large model is hundreds of small kernel launches; replaying a captured graph
issues them all at once, so the GPU never waits for Python. Only the model's forward pass is
captured (embedding, layers, final norm); logits and sampling run after it, eagerly, because
they vary with the requests' sampling parameters.

    capture (start-up, largest size first, one shared memory pool):
        fill the persistent buffers with B padding requests -> warm-up forward -> capture forward
    prune (default sizes only): time one replay of each; drop a size that some larger size
        replays as fast (the matmul libraries pick tiles per row count, so time is not monotonic
        in it: on an H200 Llama-3.1-8B's layer matmuls took 415 us at 448 rows, 303 at 464;
        a larger size must be 3% faster, so sizes within noise of each other all stay)
    replay (a decode-only step with n <= max size requests):
        B = the smallest captured size >= n
        InputBuffers.fill(..., pad_to_reqs=B)  (same buffer addresses as at capture)
        graph.replay() -> hidden[B]; rows past n are padding and never read

What makes this safe: every tensor the forward reads lives in `InputBuffers` or the KV cache at a
fixed address, the attention backend declares `supports_graphs` (no host synchronisation, no
allocation that depends on data), and so do the selected kernel ops.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Sequence
from typing import Any

import torch

from tenon.spec.attention import AttentionBackend, ForwardContext
from tenon.worker.input_buffers import InputBuffers, StepInputs

MAX_DEFAULT_CAPTURE_SIZE = 1024  # larger decode batches run eagerly


def default_capture_sizes(max_num_seqs: int) -> tuple[int, ...]:
    """1, 2, 4, 8 and every multiple of 16 up to 1024, as far as max_num_seqs (vLLM captures
    every 16 rows past 256 too, and stops at 512; here an eager decode step of ~1000 rows was
    host-bound: 38 ms against 34 ms replayed, H200, Llama-3.1-8B). Capture then drops the sizes
    a larger one replays at least 3% faster (`keep_fastest_sizes`)."""
    limit = min(max_num_seqs, MAX_DEFAULT_CAPTURE_SIZE)
    candidates = [1, 2, 4, 8, *range(16, MAX_DEFAULT_CAPTURE_SIZE + 1, 16)]
    sizes = [size for size in candidates if size <= limit]
    if limit not in sizes:
        sizes.append(limit)
    return tuple(sorted(set(sizes)))


def resolve_capture_sizes(requested: Sequence[int] | None, max_num_seqs: int) -> tuple[int, ...]:
    if requested is None:
        return default_capture_sizes(max_num_seqs)
    sizes = sorted({size for size in requested if size <= max_num_seqs})
    return tuple(sizes)


PRUNE_MARGIN = 0.03  # a size is dropped only where a larger one is this much faster


def keep_fastest_sizes(replay_s: dict[int, float], margin: float = PRUNE_MARGIN) -> tuple[int, ...]:
    """The sizes that no larger size replays more than `margin` faster than: a batch then pads
    to a size at least about as fast as any that holds it (padding rows cost matmul rows only;
    attention skips them, the LM head never sees them). The margin keeps sizes whose times are
    within measurement noise (the one-token size, whose fused kernels decode-1 needs, among
    them); the largest size is always kept."""
    kept: list[int] = []
    fastest_larger = float("inf")
    for size in sorted(replay_s, reverse=True):
        if fastest_larger >= replay_s[size] * (1 - margin):
            kept.append(size)
            fastest_larger = min(fastest_larger, replay_s[size])
    return tuple(sorted(kept))


class DecodeGraphs:
    """The captured decode graphs of one model runner."""

    def __init__(
        self,
        *,
        platform: Any,
        model: Any,
        attention_backend: AttentionBackend,
        kv_layers: Sequence[torch.Tensor],
        buffers: InputBuffers,
        sizes: Sequence[int],
    ) -> None:
        self.platform = platform
        self.model = model
        self.attention_backend = attention_backend
        self.kv_layers = kv_layers
        self.buffers = buffers
        self.sizes = tuple(sorted(sizes))
        self._graphs: dict[int, Any] = {}
        self._outputs: dict[int, torch.Tensor] = {}  # size -> hidden [size, hidden_size]
        self.capture_s = 0.0
        self.num_replays = 0
        self.replay_s: dict[int, float] = {}  # size -> seconds of one replay (when pruned)
        self.dropped_sizes: tuple[int, ...] = ()

    @property
    def max_size(self) -> int:
        return self.sizes[-1] if self.sizes else 0

    def padded_size(self, num_reqs: int) -> int | None:
        """The captured size a decode step of `num_reqs` requests replays, or None (eager)."""
        index = bisect.bisect_left(self.sizes, num_reqs)
        return self.sizes[index] if index < len(self.sizes) else None

    def capture(self, *, prune_slower: bool = False) -> None:
        """Capture every size; with `prune_slower`, then drop those a larger size replays as
        fast (module docstring)."""
        start = time.perf_counter()
        pool = None
        for size in reversed(self.sizes):  # largest first: later graphs reuse its memory
            inputs = self.buffers.fill([], [], pad_to_reqs=size)  # padding requests only
            self.attention_backend.prepare(inputs.metadata)
            self._forward(inputs)  # warm-up: kernel compilation and library workspaces
            self.platform.synchronize(inputs.input_ids.device)
            graph = self.platform.create_graph()
            with graph.capture(pool=pool):
                output = self._forward(inputs)
            pool = graph.pool()
            self._graphs[size] = graph
            self._outputs[size] = output
        self.platform.synchronize(self.buffers.device)
        if prune_slower and len(self.sizes) > 1:
            self._prune_slower()
        self.capture_s = time.perf_counter() - start

    def _prune_slower(self) -> None:
        device = self.buffers.device
        for size in self.sizes:
            self.buffers.fill([], [], pad_to_reqs=size)
            graph = self._graphs[size]
            graph.replay()  # the first replay also uploads the graph
            self.platform.synchronize(device)
            began = time.perf_counter()
            graph.replay()
            self.platform.synchronize(device)
            self.replay_s[size] = time.perf_counter() - began
        kept = keep_fastest_sizes(self.replay_s)
        self.dropped_sizes = tuple(size for size in self.sizes if size not in kept)
        for size in self.dropped_sizes:
            del self._graphs[size], self._outputs[size]
        self.sizes = kept

    def replay(self, inputs: StepInputs, size: int) -> torch.Tensor:
        """Run the captured forward of `size` over the filled buffers; hidden [size, hidden]."""
        self._graphs[size].replay()
        self.num_replays += 1
        return self._outputs[size]

    def _forward(self, inputs: StepInputs) -> torch.Tensor:
        context = ForwardContext(
            attention_metadata=inputs.metadata,
            attention_backend=self.attention_backend,
            kv_layers=self.kv_layers,
        )
        hidden: torch.Tensor = self.model.forward(inputs.input_ids, inputs.positions, context)
        return hidden
