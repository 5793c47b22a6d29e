"""Start-up of the KV connector named by `--kv-transfer-config`: select it early (before the
model loads, so a misspelt name fails fast), build its two sides once the KV cache exists.

    select_kv_connector  (after the platform)  -> KVConnectorClasses
    build_kv_transfer    (after the KV cache)  -> KVTransferScheduler, KVTransferWorker
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from tenon.engine.kv_cache_manager import KVCacheManager
from tenon.engine.kv_transfer import KVTransferScheduler
from tenon.kv_transfer_config import KVTransferConfig
from tenon.plugin_host import PluginHost
from tenon.plugin_host.targets import import_target
from tenon.spec import KVConnectorSpec, PluginKind, Requirements
from tenon.spec.kv_connector import KVConnectorScheduler, KVConnectorWorker
from tenon.startup.phases import StartupLog
from tenon.worker.kv_transfer import KVTransferWorker


@attrs.frozen(kw_only=True)
class KVConnectorClasses:
    config: KVTransferConfig
    spec: KVConnectorSpec
    scheduler_class: type[KVConnectorScheduler]
    worker_class: type[KVConnectorWorker]


def select_kv_connector(
    log: StartupLog, host: PluginHost, config: KVTransferConfig, device_type: str
) -> KVConnectorClasses:
    """Both sides' classes. ValueError when no connector has that name (listing those that
    exist); `PluginSelectionError` when it cannot serve the role or device."""
    name = config.kv_connector
    registered = sorted(entry.spec.name for entry in host.specs(PluginKind.KV_CONNECTOR))
    quarantined = {spec.name for spec in host.quarantined_specs if spec.kind is PluginKind.KV_CONNECTOR}
    if name not in registered and name not in quarantined:
        raise ValueError(
            f"--kv-transfer-config names kv_connector {name!r}, which no plugin registers; "
            f"registered KV connectors: {', '.join(registered) or 'none'} "
            "(`tenon doctor` lists every plugin, and why any was quarantined)"
        )
    scheduler_class, decision = host.select(
        PluginKind.KV_CONNECTOR,
        Requirements(kv_role=config.kv_role, device_type=device_type),
        requested=name,
    )
    spec = decision.chosen
    assert isinstance(spec, KVConnectorSpec)
    verdict = decision.chosen_verdict
    log.slot("kv connector", f"{spec.name} as {config.kv_role}",
             "; ".join(verdict.reasons) if verdict else "")
    worker_class = import_target(spec.worker_target)
    for side, cls, base in (("target", scheduler_class, KVConnectorScheduler),
                            ("worker_target", worker_class, KVConnectorWorker)):
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise TypeError(
                f"KV connector {spec.name!r}: {side} must name a subclass of "
                f"tenon.spec.kv_connector.{base.__name__}, got {cls!r}"
            )
    return KVConnectorClasses(
        config=config, spec=spec, scheduler_class=scheduler_class, worker_class=worker_class
    )


def build_kv_transfer(
    classes: KVConnectorClasses,
    *,
    kv_cache_manager: KVCacheManager,
    kv_cache: torch.Tensor,  # [num_blocks, num_layers, 2, block_size, heads, head_size]
    kv_layers: list[torch.Tensor],
) -> tuple[KVTransferScheduler, KVTransferWorker]:
    """Both sides built separately, as they would be in separate processes."""
    config = classes.config

    def options() -> dict[str, Any]:  # a copy each: the sides share nothing in one process either
        return {"role": config.kv_role, "extra_config": dict(config.kv_connector_extra_config)}

    block_bytes = kv_cache[0].numel() * kv_cache.element_size()
    scheduler_side = KVTransferScheduler(
        classes.scheduler_class(**options()), kv_cache_manager, block_bytes=block_bytes
    )
    worker_side = KVTransferWorker(
        classes.worker_class(**options()),
        kv_cache=kv_cache,
        kv_layers=kv_layers,
        block_size=kv_cache_manager.block_size,
    )
    return scheduler_side, worker_side
