"""Hardware platforms: the device, its memory, streams and graphs, and collectives.

The platform slot is filled first: its spec's `probe` (a cheap function, imported on its own)
says whether the hardware is usable in this process; among usable platforms the highest priority
wins unless `--device` names one. A vendor adds hardware by shipping a package with a platform
plugin; the core never tests for a vendor by name.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import attrs

if TYPE_CHECKING:
    import torch


@attrs.frozen(kw_only=True)
class MemoryInfo:
    total_bytes: int
    free_bytes: int


# Who starts the engine: "offline" is the `LLM` class (throughput first), "server" is
# `tenon serve` (latency matters too). vLLM's usage contexts LLM_CLASS and OPENAI_API_SERVER.
Usage = Literal["offline", "server"]


@attrs.frozen(kw_only=True)
class BatchDefaults:
    """What --max-num-seqs and --max-num-batched-tokens mean when nobody sets them."""

    max_num_seqs: int
    max_num_batched_tokens: int


GENERIC_BATCH_DEFAULTS = BatchDefaults(max_num_seqs=256, max_num_batched_tokens=8192)


class Platform(abc.ABC):
    """One instance per process. Methods are called at start-up and by the model runner.

    - `device(index)` gives the torch device of worker `index`.
    - `memory_info(device)` sizes the KV cache (the runner profiles a forward pass, then takes
      `--gpu-memory-utilization` of the total minus what is in use).
    - `synchronize`, `create_stream`, `create_event` serve the runner's one-sync-per-step loop.
    - `create_graph()` returns a graph object when `capabilities.supports_graphs`, else None:
      `capture(pool=None)` (a context manager recording the device work issued inside it),
      `replay()`, and `pool()` (a memory-pool handle; graphs captured with the same pool share
      memory, so only one of them may run at a time).
    - `preferred_attention_backends` ranks backend names ahead of priority order.
    - `batch_defaults(device, usage)` sizes the step where the user did not: a large device
      keeps its matmuls efficient with more sequences and tokens a step.
    """

    name: str = "platform"
    device_type: str = "cpu"
    collectives_backend: str = "gloo"  # torch.distributed backend for tensor parallelism
    preferred_attention_backends: tuple[str, ...] = ()

    @abc.abstractmethod
    def device(self, index: int = 0) -> torch.device:
        """The torch device that worker `index` computes on."""

    @abc.abstractmethod
    def memory_info(self, device: torch.device) -> MemoryInfo:
        """Total and free memory of `device`, in bytes."""

    def synchronize(self, device: torch.device) -> None:  # noqa: B027 - CPU: nothing to wait for
        """Block until queued work on `device` is done."""

    def create_stream(self, device: torch.device) -> Any | None:
        """A new stream for overlapping copies with compute; None where streams do not exist."""
        return None

    def create_event(self, device: torch.device) -> Any | None:
        """A new event for ordering work across streams; None where events do not exist."""
        return None

    def create_graph(self) -> Any | None:
        """A device graph to capture decode steps into; None where graphs are unsupported."""
        return None

    def default_dtype(self, checkpoint_dtype: str | None) -> str:
        """The dtype `--dtype auto` means here, given the checkpoint's (None when unknown).
        Default: the checkpoint's half precision if it has one, else bfloat16."""
        return checkpoint_dtype if checkpoint_dtype in ("bfloat16", "float16") else "bfloat16"

    def batch_defaults(self, device: torch.device, usage: Usage) -> BatchDefaults:
        """--max-num-seqs and --max-num-batched-tokens where neither the user nor a plugin's
        `tenon_configure` set them. Default: 256 sequences and 8192 tokens a step."""
        return GENERIC_BATCH_DEFAULTS

    def pin_memory_available(self) -> bool:
        """Whether host buffers should be pinned for asynchronous copies."""
        return False

    @contextlib.contextmanager
    def inference_mode(self) -> Iterator[None]:
        """The context the runner executes model code in (torch.inference_mode by default)."""
        import torch

        with torch.inference_mode():
            yield
