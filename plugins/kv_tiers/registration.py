"""Registers the CPU and disk KV tiers and the OffloadingConnector, and turns the
`--kv-offloading-*` flags into the engine's KV transfer config (imports nothing heavy)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tenon.spec import (
    API_VERSION,
    KVConnectorCapabilities,
    KVConnectorSpec,
    KVTierCapabilities,
    KVTierSpec,
    hookimpl,
)
from tenon.spec.attention import KV_CACHE_LAYOUT


@hookimpl
def tenon_kv_tiers() -> Sequence[KVTierSpec]:
    return [
        KVTierSpec(
            name="cpu",
            target="tenon.plugins.kv_tiers.cpu_tier:CPUTier",
            api_version=API_VERSION,
            description="host memory, one preallocated slab (pinned on GPUs), LRU",
            capabilities=KVTierCapabilities(medium="cpu", kv_layouts=(KV_CACHE_LAYOUT,)),
        ),
        KVTierSpec(
            name="disk",
            target="tenon.plugins.kv_tiers.disk_tier:DiskTier",
            api_version=API_VERSION,
            description="one checksummed file per block, written in the background, LRU; "
            "survives a restart",
            capabilities=KVTierCapabilities(
                medium="disk", persistent=True, kv_layouts=(KV_CACHE_LAYOUT,)
            ),
        ),
    ]


@hookimpl
def tenon_kv_connectors() -> Sequence[KVConnectorSpec]:
    return [
        KVConnectorSpec(
            name="OffloadingConnector",
            target="tenon.plugins.kv_tiers.connector_scheduler:OffloadingConnectorScheduler",
            worker_target="tenon.plugins.kv_tiers.connector_worker:OffloadingConnectorWorker",
            api_version=API_VERSION,
            description="KV offloading to the CPU and disk tiers (--kv-offloading-size, "
            "--kv-offloading-dir), as vLLM's",
            capabilities=KVConnectorCapabilities(),
        )
    ]


@hookimpl
def tenon_configure(config: Any) -> None:
    from tenon.plugins.kv_tiers.offloading_config import apply_offloading_config

    apply_offloading_config(config)
