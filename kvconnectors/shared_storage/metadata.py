"""What the scheduler side tells the worker side each step (picklable, plain records)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs


@attrs.frozen(kw_only=True)
class BlockLoad:
    request_id: str
    block_id: int  # where in the KV cache the block goes
    block_hash: bytes


@attrs.frozen(kw_only=True)
class RequestSave:
    """A finished request's blocks to store; the engine keeps them until this is reported."""

    request_id: str
    blocks: tuple[tuple[int, bytes], ...]  # (block id, block hash)


@attrs.frozen(kw_only=True)
class SharedStorageStepMetadata:
    loads: tuple[BlockLoad, ...] = ()
    saves: tuple[RequestSave, ...] = ()


def storage_path(extra_config: Mapping[str, Any]) -> Path:
    """The shared directory from `kv_connector_extra_config`, created when missing."""
    value = extra_config.get("shared_storage_path")
    if not isinstance(value, str) or not value:
        raise ValueError(
            "SharedStorageConnector needs kv_connector_extra_config.shared_storage_path: the "
            'directory both engines share, e.g. {"shared_storage_path": "/mnt/kv"}'
        )
    path = Path(value)
    path.mkdir(parents=True, exist_ok=True)
    return path
