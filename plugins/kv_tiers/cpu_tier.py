"""The CPU tier: KV blocks in one preallocated host slab, least recently used evicted first.

    slab: [num_slots, num_layers, 2, block_size, num_kv_heads, head_size]  (block_shape per slot)
    index: {block hash: slot}, ordered least recently used first

    store:  device block --copy, then wait--> slab[slot]   (done before store() returns)
    load:   slab[slot] --non-blocking copy--> device block  (done when its event completes)

On a GPU the slab is pinned, so loads are asynchronous copies on the compute stream: the layers
that read the loaded blocks are queued after them on the same stream, so they never read early.
`wait` therefore does not block the host: it orders the current stream after the copies (a
no-op on the same stream) and reports the load done, so the host goes on queueing the forward
while the copies run (measured on an H200: the host blocking here put the whole copy, 20 ms for
an 8,000-token prefix, in front of the step). The load time in the stats is the copies' own,
read from timing events once they complete.
On the CPU both directions are plain memcpys and finish inside the call.

Not thread-safe: the scheduler and the worker call it from the engine core's one thread.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import torch

from tenon.plugins.kv_tiers.chain_tier import ChainTier
from tenon.plugins.kv_tiers.stats import TierCounters, TierStats
from tenon.spec.kv_tier import TransferResult


@attrs.define
class _PendingLoad:
    transfer_id: int
    event: Any  # torch.Event recorded after the copies
    start_event: Any  # torch.Event recorded before them (timing), None on the CPU
    failed_hashes: tuple[bytes, ...]
    num_blocks: int
    start_s: float


def blocks_that_fit(
    capacity_bytes: int, block_shape: Sequence[int], dtype: str, *, tier: str, flag: str
) -> tuple[int, int]:
    """(bytes of one block of `block_shape` in `dtype`, a torch dtype name; how many whole
    blocks `capacity_bytes` holds). Raises ValueError naming `flag` when not even one fits."""
    element_bytes = torch.empty((), dtype=getattr(torch, dtype)).element_size()
    block_bytes = math.prod(block_shape) * element_bytes
    num_blocks = capacity_bytes // block_bytes
    if num_blocks < 1:
        raise ValueError(
            f"the {tier} KV tier has {capacity_bytes} bytes but one KV block needs "
            f"{block_bytes} bytes; raise {flag}"
        )
    return block_bytes, num_blocks


class CPUTier(ChainTier):
    """Host-memory tier. `pin_memory` should be the platform's `pin_memory_available()`."""

    name = "cpu"

    def __init__(
        self,
        *,
        capacity_bytes: int,
        block_shape: tuple[int, ...],
        dtype: str,
        pin_memory: bool = False,
    ) -> None:
        super().__init__(capacity_bytes=capacity_bytes, block_shape=tuple(block_shape), dtype=dtype)
        self.block_bytes, self.num_slots = blocks_that_fit(
            capacity_bytes, block_shape, dtype, tier="CPU", flag="--kv-offloading-size"
        )
        # slab: [num_slots, *block_shape]; empty, since a slot is read only after a store
        self._slab = torch.empty(
            (self.num_slots, *self.block_shape), dtype=getattr(torch, dtype), pin_memory=pin_memory
        )
        self._index: OrderedDict[bytes, int] = OrderedDict()
        self._free_slots = list(range(self.num_slots - 1, -1, -1))  # pop() hands out slot 0 first
        self._pending_loads: list[_PendingLoad] = []
        # Loads reported done to the stream-ordered reader whose copies may still run: their
        # time is counted once their end event completes.
        self._timing_loads: list[_PendingLoad] = []
        self._finished: list[TransferResult] = []
        self._next_transfer_id = 0
        self.counters = TierCounters()

    # --- KVTier ---------------------------------------------------------------------------

    def lookup(self, block_hashes: Sequence[bytes]) -> int:
        count = 0
        for block_hash in block_hashes:
            if block_hash not in self._index:
                break
            count += 1
        return count

    def store(self, items: Sequence[tuple[bytes, torch.Tensor]]) -> int:
        start_s = time.perf_counter()
        # A slot may be overwritten below; asynchronous loads still reading one must finish.
        self._wait_for_loads()
        devices = set()
        num_stored = 0
        for block_hash, block in items:
            if block_hash in self._index:  # same hash, same bytes: refresh its recency only
                self._index.move_to_end(block_hash)
                continue
            assert tuple(block.shape) == self.block_shape, (tuple(block.shape), self.block_shape)
            assert block.dtype == self._slab.dtype, (block.dtype, self._slab.dtype)
            slot = self._take_slot()
            self._slab[slot].copy_(block, non_blocking=True)
            self._index[block_hash] = slot
            devices.add(block.device)
            num_stored += 1
        for device in devices:
            if device.type != "cpu":  # the device block may be reused once store() returns
                torch.accelerator.current_stream(device).synchronize()
        transfer_id = self._new_transfer_id()
        self._finished.append(TransferResult(transfer_id=transfer_id))
        self.counters.add(
            num_stored_blocks=num_stored,
            stored_bytes=num_stored * self.block_bytes,
            num_stores=1,
            store_time_s=time.perf_counter() - start_s,
        )
        return transfer_id

    def load(self, block_hashes: Sequence[bytes], destinations: Sequence[torch.Tensor]) -> int:
        start_s = time.perf_counter()
        assert len(block_hashes) == len(destinations)
        failed: list[bytes] = []
        device = None
        start_event = None
        if any(destination.device.type != "cpu" for destination in destinations):
            start_event = torch.Event(device=destinations[0].device, enable_timing=True)
            start_event.record()
        for block_hash, destination in zip(block_hashes, destinations, strict=True):
            slot = self._index.get(block_hash)
            if slot is None:
                failed.append(block_hash)
                continue
            destination.copy_(self._slab[slot], non_blocking=True)
            self._index.move_to_end(block_hash)
            if destination.device.type != "cpu":
                device = destination.device
        transfer_id = self._new_transfer_id()
        num_loaded = len(block_hashes) - len(failed)
        self.counters.add(num_hit_blocks=num_loaded, loaded_bytes=num_loaded * self.block_bytes,
                          num_load_failures=len(failed))
        if device is None:
            self._finish_load(
                _PendingLoad(transfer_id, None, None, tuple(failed), num_loaded, start_s)
            )
        else:
            event = torch.Event(device=device, enable_timing=True)
            event.record()
            self._pending_loads.append(
                _PendingLoad(transfer_id, event, start_event, tuple(failed), num_loaded, start_s)
            )
        return transfer_id

    def poll(self) -> list[TransferResult]:
        still_pending = []
        for pending in self._pending_loads:
            if pending.event.query():
                self._finish_load(pending)
            else:
                still_pending.append(pending)
        self._pending_loads = still_pending
        finished, self._finished = self._finished, []
        return finished

    # --- ChainTier ---------------------------------------------------------------------------

    def wait(self, transfer_ids: Iterable[int]) -> None:
        """Order the current stream after these loads and report them done; no host wait."""
        wanted = set(transfer_ids)
        still_pending = []
        for pending in self._pending_loads:
            if pending.transfer_id not in wanted:
                still_pending.append(pending)
                continue
            torch.accelerator.current_stream(pending.event.device).wait_event(pending.event)
            self._finished.append(TransferResult(transfer_id=pending.transfer_id,
                                                 failed_hashes=pending.failed_hashes))
            self._timing_loads.append(pending)
        self._pending_loads = still_pending
        self._count_finished_copies()

    def _count_finished_copies(self) -> None:
        """Load counters for reported loads whose copies have completed since."""
        still_running = []
        for pending in self._timing_loads:
            if pending.event.query():
                load_time_s = pending.start_event.elapsed_time(pending.event) / 1e3
                self.counters.add(num_loads=1, load_time_s=load_time_s)
            else:
                still_running.append(pending)
        self._timing_loads = still_running

    def __contains__(self, block_hash: bytes) -> bool:
        return block_hash in self._index

    def block_view(self, block_hash: bytes) -> torch.Tensor | None:
        """The stored block's bytes (a view of the slab, valid until the next store), or None."""
        slot = self._index.get(block_hash)
        return None if slot is None else self._slab[slot]

    @property
    def num_blocks(self) -> int:
        return len(self._index)

    def stats(self) -> TierStats:
        self._count_finished_copies()
        return self.counters.snapshot(
            tier=self.name,
            capacity_bytes=self.num_slots * self.block_bytes,
            used_bytes=len(self._index) * self.block_bytes,
        )

    def _take_slot(self) -> int:
        if self._free_slots:
            return self._free_slots.pop()
        _, slot = self._index.popitem(last=False)
        self.counters.add(num_evicted_blocks=1)
        return slot

    def _wait_for_loads(self) -> None:
        for pending in (*self._pending_loads, *self._timing_loads):
            pending.event.synchronize()
        self._count_finished_copies()

    def _finish_load(self, pending: _PendingLoad) -> None:
        self._finished.append(
            TransferResult(transfer_id=pending.transfer_id, failed_hashes=pending.failed_hashes)
        )
        if pending.start_event is not None:  # the copies' own time
            load_time_s = pending.start_event.elapsed_time(pending.event) / 1e3
        else:
            load_time_s = time.perf_counter() - pending.start_s
        self.counters.add(num_loads=1, load_time_s=load_time_s)

    def _new_transfer_id(self) -> int:
        self._next_transfer_id += 1
        return self._next_transfer_id
