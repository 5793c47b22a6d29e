"""Decode steps captured as device graphs, one per padded batch size, replayed step after step.

A decode step of a large model is hundreds of small kernel launches; replaying a captured graph
issues them all at once, so the GPU never waits for Python. Only the model's forward pass is
captured (embedding, layers, final norm); logits and sampling run after it, eagerly, because
they vary with the requests' sampling parameters.

    capture (start-up, largest size first, one shared memory pool):
        fill the persistent buffers with B padding requests -> warm-up forward -> capture forward
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
    """1, 2, 4, 8, every multiple of 16 up to 256, of 32 up to 512 and of 64 up to 1024, as far
    as max_num_seqs (vLLM's shape, coarser past 256: a batch pads to the next size, at most 1/8
    more rows). vLLM stops at 512; here an eager decode step of ~1000 rows was host-bound (38 ms
    against 34 ms replayed, H200, Llama-3.1-8B), so large batches are captured too."""
    limit = min(max_num_seqs, MAX_DEFAULT_CAPTURE_SIZE)
    candidates = [1, 2, 4, 8, *range(16, 257, 16), *range(288, 513, 32), *range(576, 1025, 64)]
    sizes = [size for size in candidates if size <= limit]
    if limit not in sizes:
        sizes.append(limit)
    return tuple(sorted(set(sizes)))


def resolve_capture_sizes(requested: Sequence[int] | None, max_num_seqs: int) -> tuple[int, ...]:
    if requested is None:
        return default_capture_sizes(max_num_seqs)
    sizes = sorted({size for size in requested if size <= max_num_seqs})
    return tuple(sizes)


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

    @property
    def max_size(self) -> int:
        return self.sizes[-1] if self.sizes else 0

    def padded_size(self, num_reqs: int) -> int | None:
        """The captured size a decode step of `num_reqs` requests replays, or None (eager)."""
        index = bisect.bisect_left(self.sizes, num_reqs)
        return self.sizes[index] if index < len(self.sizes) else None

    def capture(self) -> None:
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
        self.capture_s = time.perf_counter() - start

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
