"""The platform suite of the kit, run on the built-in CPU platform (proving the kit itself)."""

from __future__ import annotations

import torch

from tenon.plugins.platforms.cpu import CpuPlatform
from tenon.plugins.platforms.registration import tenon_platforms
from tenon.spec.platform import MemoryInfo
from tenon.testing import PlatformConformance, run_conformance

[CPU_SPEC] = tenon_platforms()


class TestCpuPlatform(PlatformConformance):
    platform_class = CpuPlatform
    spec = CPU_SPEC


class LyingPlatform(CpuPlatform):
    """Claims more free memory than there is, and a dtype its spec does not declare."""

    def memory_info(self, device: torch.device) -> MemoryInfo:
        return MemoryInfo(total_bytes=1 << 30, free_bytes=2 << 30)

    def default_dtype(self, checkpoint_dtype: str | None) -> str:
        return "float64"


def test_the_suite_fails_a_platform_with_insane_answers() -> None:
    class TestLying(PlatformConformance):
        platform_class = LyingPlatform

    report = run_conformance(TestLying, check=False)
    assert [result.name for result in report.failed] == [
        "test_memory_info_is_sane",
        "test_default_dtype_is_declared",
    ]
    assert report.names("skipped") == [
        "test_probe_returns_a_bool",
        "test_spec_names_this_platform",
        "test_engine_generates_reference_tokens",
    ]
    assert "default_dtype(None) returned 'float64'" in report.failed[1].detail
