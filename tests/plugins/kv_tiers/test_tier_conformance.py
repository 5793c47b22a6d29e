"""The built-in tiers through the KV tier conformance suite (`tenon.testing`)."""

from __future__ import annotations

from pathlib import Path

from tenon.plugins.kv_tiers.cpu_tier import CPUTier
from tenon.plugins.kv_tiers.disk_tier import DiskTier
from tenon.plugins.kv_tiers.registration import tenon_kv_tiers
from tenon.spec.kv_tier import KVTier
from tenon.testing import KVTierConformance

SPECS = {spec.name: spec for spec in tenon_kv_tiers()}


class TestCPUTier(KVTierConformance):
    tier_class = CPUTier
    spec = SPECS["cpu"]


class TestDiskTier(KVTierConformance):
    tier_class = DiskTier
    spec = SPECS["disk"]

    def make_tier(
        self, folder: Path, *, capacity_bytes: int, block_shape: tuple[int, ...], dtype: str
    ) -> KVTier:
        return DiskTier(capacity_bytes=capacity_bytes, block_shape=block_shape, dtype=dtype,
                        directory=folder, model="conformance")

    def damage_stored_block(self, tier: KVTier, folder: Path, block_hash: bytes, how: str) -> None:
        assert isinstance(tier, DiskTier)
        path = tier.block_path(block_hash)
        if how == "corrupt":
            data = bytearray(path.read_bytes())
            data[-5] ^= 0x08
            path.write_bytes(bytes(data))
        elif how == "truncate":
            path.write_bytes(path.read_bytes()[:-10])
        else:
            path.unlink()
