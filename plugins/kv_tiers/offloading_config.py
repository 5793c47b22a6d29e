"""How the OffloadingConnector is configured, and what its two sides share.

The flags `--kv-offloading-size` (GiB, the CPU tier), `--kv-offloading-dir` and
`--kv-offloading-disk-size` (GiB, the disk tier) select the connector, as in vLLM: they become
the engine's `--kv-transfer-config`

    {"kv_connector": "OffloadingConnector", "kv_role": "kv_both",
     "kv_connector_extra_config": {"cpu_bytes_to_use": ..., "disk_path": ...,
                                   "disk_bytes_to_use": ...}}

which may also be given directly. The engine runs one KV connector: the flags together with a
`--kv-transfer-config` naming another connector are refused, not chained.

Both sides of the connector run in the engine core's process. The scheduler side asks the tiers
what they hold and the worker side moves bytes through them, so they share one
`OffloadingSession` (the tiers, built once the worker knows the KV cache's block shape), which
`apply_offloading_config` puts in the extra config both sides receive.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch

from tenon.kv_transfer_config import KVTransferConfig
from tenon.plugins.kv_tiers.chain import TierChain
from tenon.plugins.kv_tiers.chain_tier import ChainTier
from tenon.plugins.kv_tiers.cpu_tier import CPUTier
from tenon.plugins.kv_tiers.disk_tier import DiskTier

CONNECTOR_NAME = "OffloadingConnector"
SESSION_KEY = "tenon_offloading_session"
GIB = 1 << 30


@attrs.frozen(kw_only=True)
class OffloadingSettings:
    cpu_bytes: int | None  # None or 0: no CPU tier
    disk_path: str | None  # None: no disk tier
    disk_bytes: int | None
    model: str  # what the disk tier's files belong to (with the dtype and block shape)

    @classmethod
    def from_extra_config(cls, extra: Mapping[str, Any], model: str) -> OffloadingSettings:
        """Read and check vLLM-style keys; ValueError says what to change."""
        cpu_bytes = _size(extra, "cpu_bytes_to_use")
        disk_bytes = _size(extra, "disk_bytes_to_use")
        disk_path = extra.get("disk_path")
        if disk_path is not None and (not isinstance(disk_path, str) or not disk_path):
            raise ValueError(f"OffloadingConnector disk_path must name a directory, got {disk_path!r}")
        if (disk_path is None) != (disk_bytes is None):
            raise ValueError(
                "the OffloadingConnector's disk tier needs both disk_path and disk_bytes_to_use "
                "(--kv-offloading-dir and --kv-offloading-disk-size)"
            )
        if not cpu_bytes and disk_path is None:
            raise ValueError(
                "the OffloadingConnector has no tier: set --kv-offloading-size (GiB of host "
                "memory), or --kv-offloading-dir with --kv-offloading-disk-size"
            )
        return cls(cpu_bytes=cpu_bytes or None, disk_path=disk_path, disk_bytes=disk_bytes,
                   model=model)


def _size(extra: Mapping[str, Any], key: str) -> int | None:
    value = extra.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"OffloadingConnector {key} must be a number of bytes >= 0, got {value!r}")
    return int(value)


class OffloadingSession:
    """The tiers of one engine, shared by the connector's scheduler and worker sides."""

    def __init__(self, settings: OffloadingSettings) -> None:
        self.settings = settings
        self.chain: TierChain | None = None  # built by `attach`, once the KV cache exists

    def attach(self, kv_cache: torch.Tensor) -> TierChain:
        """Build the tiers for blocks of this cache (`[num_blocks, *block_shape]`)."""
        if self.chain is not None:
            self.chain.close()
        block_shape = tuple(kv_cache.shape[1:])
        dtype = str(kv_cache.dtype).removeprefix("torch.")
        settings = self.settings
        tiers: list[ChainTier] = []
        if settings.cpu_bytes:
            tiers.append(CPUTier(capacity_bytes=settings.cpu_bytes, block_shape=block_shape,
                                 dtype=dtype, pin_memory=kv_cache.device.type != "cpu"))
        if settings.disk_path is not None:
            assert settings.disk_bytes is not None
            tiers.append(DiskTier(capacity_bytes=settings.disk_bytes, block_shape=block_shape,
                                  dtype=dtype, directory=settings.disk_path, model=settings.model))
        self.chain = TierChain(tiers)
        return self.chain

    def flush(self) -> None:
        """Wait until every queued disk write has finished."""
        for tier in self.chain.tiers if self.chain is not None else ():
            if isinstance(tier, DiskTier):
                tier.flush()

    def close(self) -> None:
        """Finish queued writes and stop the tiers' threads."""
        if self.chain is not None:
            self.chain.close()


def model_identity(config: Any) -> str:
    """What the disk tier's files belong to, beyond dtype and block shape: the checkpoint (its
    path, and the names, sizes and modification times of its files, so weights replaced in
    place never meet KV computed from the old ones) and the quantization asked for."""
    path = Path(config.model.model)
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        with contextlib.suppress(OSError):
            status = file.stat()
            digest.update(f"{file.name}:{status.st_size}:{status.st_mtime_ns};".encode())
    quantization = config.plugins.quantization or "checkpoint"
    return f"{path}#{digest.hexdigest()[:16]}|quantization={quantization}"


def session_of(extra_config: Mapping[str, Any]) -> OffloadingSession:
    session = extra_config.get(SESSION_KEY)
    if not isinstance(session, OffloadingSession):
        raise ValueError(
            f"the {CONNECTOR_NAME} was built without its session; the engine adds it at start-up "
            "(tenon_configure), so start it through the engine (--kv-offloading-size, "
            f"--kv-offloading-dir, or --kv-transfer-config naming {CONNECTOR_NAME})"
        )
    return session


def apply_offloading_config(config: Any) -> None:
    """Turn the `--kv-offloading-*` flags (in `config.cache`) into the engine's KV transfer
    config, and give an OffloadingConnector config its session. `config` is an EngineConfig."""
    cache = config.cache
    flags = {
        "cpu_bytes_to_use": getattr(cache, "kv_offloading_bytes", None),
        "disk_path": getattr(cache, "kv_offloading_dir", None),
        "disk_bytes_to_use": getattr(cache, "kv_offloading_disk_bytes", None),
    }
    flags_given = any(value is not None for value in flags.values())
    transfer: KVTransferConfig | None = config.kv_transfer
    if transfer is not None and transfer.kv_connector != CONNECTOR_NAME:
        if flags_given:
            raise ValueError(
                f"--kv-offloading-size/--kv-offloading-dir run the {CONNECTOR_NAME}, but "
                f"--kv-transfer-config names {transfer.kv_connector}; the engine runs one KV "
                "connector: drop the offloading flags or the transfer config"
            )
        return
    if transfer is None and not flags_given:
        return
    extra = dict(transfer.kv_connector_extra_config) if transfer is not None else {}
    extra.update({key: value for key, value in flags.items() if value is not None})
    settings = OffloadingSettings.from_extra_config(extra, model=model_identity(config))
    extra[SESSION_KEY] = OffloadingSession(settings)
    config.kv_transfer = KVTransferConfig(
        kv_connector=CONNECTOR_NAME,
        kv_role="kv_both" if transfer is None else transfer.kv_role,
        kv_connector_extra_config=extra,
    )
