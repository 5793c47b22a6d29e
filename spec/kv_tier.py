"""KV tiers: places below the device cache where whole blocks are kept, keyed by block hash.

A block is one contiguous run of the KV cache (every layer, K and V; see
`tenon.spec.attention`), identified by its stable hash (parent hash, token ids, extra keys), so
a block stored by one process can be found by another and after a restart.

Who calls what, when: the engine's KV offload manager, never the hot path of a step.
- `lookup(hashes)` when a request is scheduled: how many leading blocks this tier holds.
- `store(items)` when the device cache evicts blocks or a request finishes: asynchronous; the
  tier copies the block's bytes before returning a handle, so the device block may be reused.
- `load(hashes, destinations)` on a prefix hit here: asynchronous; the tensors must not be read
  until the handle is done.
- `poll()` once per step: the transfers that finished since the last poll.
What must hold: a missing, truncated or corrupted block is reported as failed, never returned as
data; capacity is enforced with LRU eviction inside the tier.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    import torch


@attrs.frozen(kw_only=True)
class TransferResult:
    transfer_id: int
    failed_hashes: tuple[bytes, ...] = ()  # blocks that could not be stored or loaded

    @property
    def ok(self) -> bool:
        return not self.failed_hashes


class KVTier(abc.ABC):
    """Construct with the capacity in bytes and the block's shape and dtype."""

    def __init__(self, *, capacity_bytes: int, block_shape: tuple[int, ...], dtype: str) -> None:
        self.capacity_bytes = capacity_bytes
        self.block_shape = block_shape  # [num_layers, 2, block_size, num_kv_heads, head_size]
        self.dtype = dtype

    @abc.abstractmethod
    def lookup(self, block_hashes: Sequence[bytes]) -> int:
        """The number of leading `block_hashes` this tier holds."""

    @abc.abstractmethod
    def store(self, items: Sequence[tuple[bytes, torch.Tensor]]) -> int:
        """Start storing (hash, block tensor) pairs; returns a transfer id."""

    @abc.abstractmethod
    def load(self, block_hashes: Sequence[bytes], destinations: Sequence[torch.Tensor]) -> int:
        """Start loading blocks into `destinations` (block-shaped views); returns a transfer id."""

    @abc.abstractmethod
    def poll(self) -> list[TransferResult]:
        """Transfers finished since the last call."""
