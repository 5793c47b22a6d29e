"""The disk tier: one checksummed file per KV block (`disk_format`), LRU within its capacity.

    <directory>/<identity digest>/<first 2 hex digits of the hash>/<hash hex>.kvblock

The identity digest names the model, dtype, block shape and layout, so engines of different
models can share a directory without reading each other's blocks. Capacity counts blocks
(`capacity_bytes // block bytes`); each file's header, a few hundred bytes, comes on top.
One background thread does all file I/O, loads ahead of stores; the index ({hash}, least
recently used first) is shared with the caller's thread under a lock.

- store: copies each block to host memory before returning (the device block may be reused),
  then the thread writes a temp file, fsyncs it and renames it into place; only then does the
  block enter the index, so a crash mid-store leaves an ignored temp file, never a trusted one.
  A full disk (ENOSPC, EDQUOT) skips the block and counts it; so does a writer backlog past
  `max_pending_bytes` (host memory is not allowed to grow without bound behind a slow disk).
- load: the thread reads the file and checks magic, meta (this block, model and layout), sizes
  and the checksum before a byte reaches the destination; a missing, truncated or corrupted file
  is reported failed, leaves the index, and (when it exists) is deleted.
- start: the index is rebuilt from the directory by modification time. Headers and sizes are
  checked for every file (truncated and foreign files are deleted); checksums are checked at
  each load instead, so start-up reads kilobytes per file, not the whole tier, and no byte is
  ever used unverified.
- end: `close()` finishes queued work; a tier dropped without it stops its thread too, after
  the job in hand (queued writes are then lost, which leaves nothing untrusted behind).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import threading
import time
import traceback
import weakref
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs
import torch

from tenon.plugins.kv_tiers import disk_files
from tenon.plugins.kv_tiers.chain_tier import ChainTier
from tenon.plugins.kv_tiers.cpu_tier import blocks_that_fit
from tenon.plugins.kv_tiers.disk_format import BlockIdentity, InvalidBlockFile, encode_header
from tenon.plugins.kv_tiers.stats import TierCounters, TierStats
from tenon.spec.attention import KV_CACHE_LAYOUT
from tenon.spec.kv_tier import TransferResult

DEFAULT_MAX_PENDING_BYTES = 256 << 20
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class _DiskFull(Exception):
    pass


@attrs.define
class _Job:
    transfer_id: int
    block_hashes: list[bytes]
    tensors: list[torch.Tensor]  # store: host copies; load: destinations
    is_load: bool
    failed_hashes: list[bytes] = attrs.field(factory=list)
    start_s: float = attrs.field(factory=time.perf_counter)


@attrs.define(eq=False)
class _Queues:
    """What the I/O thread waits on; it holds no reference to the tier while idle."""

    condition: threading.Condition = attrs.field(factory=threading.Condition)
    load_jobs: deque[_Job] = attrs.field(factory=deque)
    store_jobs: deque[_Job] = attrs.field(factory=deque)
    closed: bool = False

    def close(self) -> None:
        with self.condition:
            self.closed = True
            self.condition.notify_all()


class DiskTier(ChainTier):
    """Constructed with the tier's directory and the model the blocks belong to, besides the
    `KVTier` arguments."""

    name = "disk"

    def __init__(
        self,
        *,
        capacity_bytes: int,
        block_shape: tuple[int, ...],
        dtype: str,
        directory: str | os.PathLike[str],
        model: str,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        fsync: bool = True,
    ) -> None:
        super().__init__(capacity_bytes=capacity_bytes, block_shape=tuple(block_shape), dtype=dtype)
        self.identity = BlockIdentity(
            model=model, dtype=dtype, block_shape=self.block_shape, layout=KV_CACHE_LAYOUT
        )
        self.block_bytes, self.capacity_blocks = blocks_that_fit(
            capacity_bytes, block_shape, dtype, tier="disk", flag="--kv-offloading-disk-size"
        )
        self.max_pending_bytes = max_pending_bytes
        self.fsync = fsync
        self._torch_dtype = getattr(torch, dtype)
        self.root = Path(directory) / self.identity.digest
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(
                f"cannot create the KV disk tier directory {self.root}: {error}; point "
                "--kv-offloading-dir at a writable directory"
            ) from error
        self.counters = TierCounters()
        self._queues = _Queues()
        self._lock = self._queues.condition  # guards the state below and wakes the thread
        self._index: OrderedDict[bytes, None] = OrderedDict()
        self._queued_hashes: set[bytes] = set()
        self._pending_bytes = 0
        self._finished: list[TransferResult] = []
        self._outstanding: set[int] = set()
        self._transfer_ids = itertools.count(1)
        self._temp_names = itertools.count()
        self._rebuild_index()
        self._thread = threading.Thread(
            target=_serve, args=(weakref.ref(self), self._queues),
            name="tenon-kv-disk-tier", daemon=True,
        )
        self._thread.start()
        weakref.finalize(self, self._queues.close)

    # --- KVTier ---------------------------------------------------------------------------

    def lookup(self, block_hashes: Sequence[bytes]) -> int:
        count = 0
        with self._lock:
            for block_hash in block_hashes:
                if block_hash not in self._index:
                    break
                count += 1
        return count

    def store(self, items: Sequence[tuple[bytes, torch.Tensor]]) -> int:
        accepted: list[tuple[bytes, torch.Tensor]] = []
        dropped: list[bytes] = []
        with self._lock:
            assert not self._queues.closed, "the disk tier is closed"
            transfer_id = next(self._transfer_ids)
            for block_hash, block in items:
                if block_hash in self._index or block_hash in self._queued_hashes:
                    continue
                if self._pending_bytes + self.block_bytes > self.max_pending_bytes:
                    dropped.append(block_hash)
                    continue
                self._queued_hashes.add(block_hash)
                self._pending_bytes += self.block_bytes
                accepted.append((block_hash, block))
        if dropped:
            self.counters.add(num_store_failures=len(dropped))
        # Host copies taken now: the caller may reuse the source as soon as store() returns.
        job = _Job(
            transfer_id=transfer_id,
            block_hashes=[block_hash for block_hash, _ in accepted],
            tensors=[_host_copy(block, self.block_shape, self._torch_dtype) for _, block in accepted],
            is_load=False,
            failed_hashes=dropped,
        )
        self._submit(job, self._queues.store_jobs)
        return transfer_id

    def load(self, block_hashes: Sequence[bytes], destinations: Sequence[torch.Tensor]) -> int:
        assert len(block_hashes) == len(destinations)
        with self._lock:
            transfer_id = next(self._transfer_ids)
        job = _Job(transfer_id=transfer_id, block_hashes=list(block_hashes),
                   tensors=list(destinations), is_load=True)
        self._submit(job, self._queues.load_jobs)
        return transfer_id

    def poll(self) -> list[TransferResult]:
        with self._lock:
            finished, self._finished = self._finished, []
        return finished

    # --- ChainTier ---------------------------------------------------------------------------

    def __contains__(self, block_hash: bytes) -> bool:
        with self._lock:
            return block_hash in self._index

    def wait(self, transfer_ids: Iterable[int]) -> None:
        wanted = set(transfer_ids)
        with self._lock:
            self._lock.wait_for(lambda: not (wanted & self._outstanding))

    def flush(self) -> None:
        """Block until every queued store and load has finished."""
        with self._lock:
            self._lock.wait_for(lambda: not self._outstanding)

    def close(self) -> None:
        self._queues.close()
        self._thread.join()

    def stats(self) -> TierStats:
        with self._lock:
            num_blocks = len(self._index)
        return self.counters.snapshot(tier=self.name,
                                      capacity_bytes=self.capacity_blocks * self.block_bytes,
                                      used_bytes=num_blocks * self.block_bytes)

    @property
    def num_blocks(self) -> int:
        with self._lock:
            return len(self._index)

    def block_path(self, block_hash: bytes) -> Path:
        return disk_files.block_path(self.root, block_hash)

    # --- run on the I/O thread ---------------------------------------------------------------

    def _submit(self, job: _Job, queue: deque[_Job]) -> None:
        with self._lock:
            self._outstanding.add(job.transfer_id)
            queue.append(job)
            self._lock.notify_all()

    def _run_job(self, job: _Job) -> None:
        try:
            if job.is_load:
                self._run_load(job)
            else:
                self._run_store(job)
        except Exception:  # never let the thread die: callers would wait forever
            traceback.print_exc()
            done = set(job.failed_hashes)
            job.failed_hashes.extend(h for h in job.block_hashes if h not in done)
        elapsed_s = time.perf_counter() - job.start_s
        if job.is_load:
            self.counters.add(num_loads=1, load_time_s=elapsed_s)
        else:
            self.counters.add(num_stores=1, store_time_s=elapsed_s)
        with self._lock:
            self._finished.append(
                TransferResult(transfer_id=job.transfer_id, failed_hashes=tuple(job.failed_hashes))
            )
            self._outstanding.discard(job.transfer_id)
            self._lock.notify_all()

    def _run_store(self, job: _Job) -> None:
        for block_hash, payload in zip(job.block_hashes, job.tensors, strict=True):
            try:
                self._write_block(block_hash, payload)
            except _DiskFull:
                job.failed_hashes.append(block_hash)
                self.counters.add(num_store_failures=1, num_full_skips=1)
            except OSError:
                job.failed_hashes.append(block_hash)
                self.counters.add(num_store_failures=1)
            finally:
                with self._lock:
                    self._queued_hashes.discard(block_hash)
                    self._pending_bytes -= self.block_bytes

    def _write_block(self, block_hash: bytes, payload: torch.Tensor) -> None:
        victims = []
        with self._lock:
            if block_hash in self._index:
                return
            while len(self._index) >= self.capacity_blocks:
                victims.append(self._index.popitem(last=False)[0])
        for victim in victims:
            self.block_path(victim).unlink(missing_ok=True)
        self.counters.add(num_evicted_blocks=len(victims))

        path = self.block_path(block_hash)
        temp_name = f".{path.name}.{os.getpid()}.{next(self._temp_names)}{disk_files.TEMP_SUFFIX}"
        temp_path = path.with_name(temp_name)
        # payload: [*block_shape] on the host -> its raw bytes
        data = memoryview(payload.reshape(-1).view(torch.uint8).numpy().data)
        try:
            path.parent.mkdir(exist_ok=True)
            disk_files.write_file(
                temp_path, (encode_header(self.identity, block_hash, data), data), fsync=self.fsync
            )
            os.replace(temp_path, path)
        except OSError as error:
            temp_path.unlink(missing_ok=True)
            if error.errno in _FULL_ERRNOS:
                raise _DiskFull from error
            raise
        with self._lock:
            self._index[block_hash] = None
        self.counters.add(num_stored_blocks=1, stored_bytes=self.block_bytes)

    def _run_load(self, job: _Job) -> None:
        devices = set()
        for block_hash, destination in zip(job.block_hashes, job.tensors, strict=True):
            path = self.block_path(block_hash)
            try:
                payload = disk_files.read_block_file(path, self.identity, block_hash,
                                                     self.block_bytes)
            except (OSError, InvalidBlockFile) as error:
                job.failed_hashes.append(block_hash)
                with self._lock:
                    self._index.pop(block_hash, None)
                if isinstance(error, InvalidBlockFile):
                    path.unlink(missing_ok=True)
                continue
            # block: [*block_shape], a view of the verified bytes
            block = torch.frombuffer(payload, dtype=self._torch_dtype).view(self.block_shape)
            with torch.inference_mode():  # the destination may be an inference-mode view
                destination.copy_(block)
            devices.add(destination.device)
            with self._lock:
                if block_hash in self._index:
                    self._index.move_to_end(block_hash)
            with contextlib.suppress(OSError):
                os.utime(path)  # recency survives a restart (the index is rebuilt by mtime)
        for device in devices:
            if device.type != "cpu":  # copies from this thread ran on its own stream
                torch.accelerator.current_stream(device).synchronize()
        num_loaded = len(job.block_hashes) - len(job.failed_hashes)
        self.counters.add(num_hit_blocks=num_loaded, loaded_bytes=num_loaded * self.block_bytes,
                          num_load_failures=len(job.failed_hashes))

    # --- start-up -----------------------------------------------------------------------------

    def _rebuild_index(self) -> None:
        block_hashes, num_invalid = disk_files.scan_block_files(
            self.root, self.identity, self.block_bytes
        )
        self.counters.add(num_invalid_files=num_invalid)
        # Beyond the capacity (it shrank since the last run): the least recently used go.
        num_over = max(len(block_hashes) - self.capacity_blocks, 0)
        for victim in block_hashes[:num_over]:
            self.block_path(victim).unlink(missing_ok=True)
        self.counters.add(num_evicted_blocks=num_over)
        self._index.update((block_hash, None) for block_hash in block_hashes[num_over:])


def _serve(tier_ref: weakref.ref[DiskTier], queues: _Queues) -> None:
    """The I/O thread: loads first, then stores; exits once closed and drained, or once the
    tier is gone. Holds the tier only while running a job, so an unused tier can be freed."""
    while True:
        with queues.condition:
            queues.condition.wait_for(lambda: queues.load_jobs or queues.store_jobs or queues.closed)
            if queues.load_jobs:
                job = queues.load_jobs.popleft()
            elif queues.store_jobs:
                job = queues.store_jobs.popleft()
            else:
                return
        tier = tier_ref()
        if tier is None:
            return
        tier._run_job(job)
        del tier


def _host_copy(block: torch.Tensor, block_shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A contiguous host copy of one block (synchronous, so the source may be reused)."""
    assert tuple(block.shape) == block_shape, (tuple(block.shape), block_shape)
    assert block.dtype == dtype, (block.dtype, dtype)
    return block.detach().to("cpu", copy=True).contiguous()
