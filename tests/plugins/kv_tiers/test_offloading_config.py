"""The `--kv-offloading-*` flags: validation, and how they select the OffloadingConnector;
and the plugin's registration (two tiers, one connector)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from tenon.config import CacheConfig, EngineConfig, ModelConfig, PluginSelection, SchedulerConfig
from tenon.engine_args import EngineArgs
from tenon.kv_transfer_config import KVTransferConfig
from tenon.plugin_host import StaticEntryPoint, load_plugins
from tenon.plugins.kv_tiers import registration
from tenon.plugins.kv_tiers.cpu_tier import CPUTier
from tenon.plugins.kv_tiers.disk_tier import DiskTier
from tenon.plugins.kv_tiers.offloading_config import (
    SESSION_KEY,
    OffloadingSession,
    OffloadingSettings,
    apply_offloading_config,
    model_identity,
)
from tenon.spec import PluginKind, Requirements

GIB = 1 << 30


def engine_config(transfer: KVTransferConfig | None = None, **cache: object) -> EngineConfig:
    return EngineConfig(
        model=ModelConfig(model="/models/tiny", served_model_name="tiny"),
        cache=CacheConfig(**cache),
        scheduler=SchedulerConfig(),
        plugins=PluginSelection(),
        kv_transfer=transfer,
    )


def test_flags_parse_as_gib_and_validate() -> None:
    parser = argparse.ArgumentParser()
    EngineArgs.add_cli_args(parser)
    args = EngineArgs.from_cli_args(parser.parse_args(
        ["--kv-offloading-size", "1.5", "--kv-offloading-dir", "/tmp/kv",
         "--kv-offloading-disk-size", "20"]))
    assert (args.kv_offloading_size, args.kv_offloading_dir, args.kv_offloading_disk_size) == (
        1.5, "/tmp/kv", 20.0)


@pytest.mark.parametrize(("flags", "message"), [
    ({"kv_offloading_size": -1.0}, "--kv-offloading-size must be a positive"),
    ({"kv_offloading_size": 0}, "--kv-offloading-size must be a positive"),
    ({"kv_offloading_dir": "/tmp/kv"}, "needs --kv-offloading-disk-size"),
    ({"kv_offloading_disk_size": 2.0}, "needs --kv-offloading-dir"),
    ({"kv_offloading_dir": "/tmp/kv", "kv_offloading_disk_size": -2.0},
     "--kv-offloading-disk-size must be a positive"),
])
def test_bad_flags_are_refused(flags: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EngineArgs(**flags)


def test_flags_become_cache_config_fields_in_bytes() -> None:
    args = EngineArgs(kv_offloading_size=0.5, kv_offloading_dir="/tmp/kv",
                      kv_offloading_disk_size=3)
    fields = args.kv_offloading_cache_fields()
    assert fields == {"kv_offloading_bytes": GIB // 2, "kv_offloading_dir": "/tmp/kv",
                      "kv_offloading_disk_bytes": 3 * GIB}
    assert CacheConfig(**fields).kv_offloading_disk_bytes == 3 * GIB
    assert EngineArgs().kv_offloading_cache_fields() == dict.fromkeys(fields)


def test_cpu_flag_selects_the_offloading_connector() -> None:
    config = engine_config(**EngineArgs(kv_offloading_size=2).kv_offloading_cache_fields())
    apply_offloading_config(config)
    transfer = config.kv_transfer
    assert transfer is not None
    assert (transfer.kv_connector, transfer.kv_role) == ("OffloadingConnector", "kv_both")
    assert transfer.kv_connector_extra_config["cpu_bytes_to_use"] == 2 * GIB
    session = transfer.kv_connector_extra_config[SESSION_KEY]
    assert isinstance(session, OffloadingSession) and session.chain is None
    assert session.settings == OffloadingSettings(cpu_bytes=2 * GIB, disk_path=None,
                                                  disk_bytes=None, model=model_identity(config))


def test_model_identity_changes_with_the_weights_and_the_quantization(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    config = engine_config()
    config.model.model = str(tmp_path)
    first = model_identity(config)
    assert first.startswith(f"{tmp_path}#") and first.endswith("|quantization=checkpoint")
    assert model_identity(config) == first
    (tmp_path / "model.safetensors").write_bytes(b"other weights")
    second = model_identity(config)
    assert second != first
    config.plugins.quantization = "fp8"
    assert model_identity(config) == second.replace("=checkpoint", "=fp8")


def test_disk_flags_alone_select_it_too() -> None:
    config = engine_config(kv_offloading_dir="/tmp/kv", kv_offloading_disk_bytes=3 * GIB)
    apply_offloading_config(config)
    assert config.kv_transfer is not None
    settings = config.kv_transfer.kv_connector_extra_config[SESSION_KEY].settings
    assert (settings.cpu_bytes, settings.disk_path, settings.disk_bytes) == (None, "/tmp/kv", 3 * GIB)


def test_flags_fill_an_offloading_transfer_config() -> None:
    given = KVTransferConfig(kv_connector="OffloadingConnector", kv_role="kv_producer",
                             kv_connector_extra_config={"cpu_bytes_to_use": GIB})
    config = engine_config(given, kv_offloading_dir="/tmp/kv", kv_offloading_disk_bytes=GIB)
    apply_offloading_config(config)
    assert config.kv_transfer is not None and config.kv_transfer.kv_role == "kv_producer"
    settings = config.kv_transfer.kv_connector_extra_config[SESSION_KEY].settings
    assert (settings.cpu_bytes, settings.disk_path) == (GIB, "/tmp/kv")


def test_flags_with_another_connector_are_refused() -> None:
    other = KVTransferConfig(kv_connector="SharedStorageConnector", kv_role="kv_both")
    with pytest.raises(ValueError, match="runs one KV connector"):
        apply_offloading_config(engine_config(other, kv_offloading_bytes=GIB))
    config = engine_config(other)
    apply_offloading_config(config)
    assert config.kv_transfer is other


def test_nothing_to_do_without_flags_or_connector() -> None:
    config = engine_config()
    apply_offloading_config(config)
    assert config.kv_transfer is None


def test_an_offloading_connector_without_a_tier_is_refused() -> None:
    empty = KVTransferConfig(kv_connector="OffloadingConnector", kv_role="kv_both")
    with pytest.raises(ValueError, match="has no tier"):
        apply_offloading_config(engine_config(empty))


def test_registration_offers_both_tiers_and_the_connector() -> None:
    entry_point = StaticEntryPoint(name="kv-tiers", loader=lambda: registration,
                                   distribution="tenon")
    host = load_plugins(environ={}, entry_points=[entry_point])
    cpu_class, _ = host.select(PluginKind.KV_TIER, Requirements(kv_medium="cpu"))
    disk_class, decision = host.select(PluginKind.KV_TIER, Requirements(kv_medium="disk"))
    assert (cpu_class, disk_class) == (CPUTier, DiskTier)
    assert decision.chosen is not None and decision.chosen.capabilities.persistent is True
    [connector] = host.report()["specs"]["kv_connector"]
    assert (connector["name"], connector["worker_target"]) == (
        "OffloadingConnector",
        "tenon.plugins.kv_tiers.connector_worker:OffloadingConnectorWorker",
    )
