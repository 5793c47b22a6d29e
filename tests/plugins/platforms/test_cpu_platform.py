"""The CPU platform plugin: its registration, probe, device and host-memory reading."""

from __future__ import annotations

import os

import torch

from tenon.plugins.platforms import cpu_probe, registration
from tenon.plugins.platforms.cpu import CpuPlatform, host_memory_info, parse_meminfo
from tenon.spec import API_VERSION, PlatformCapabilities, PlatformSpec
from tenon.spec.platform import MemoryInfo, Platform

MEMINFO = """MemTotal:       16318604 kB
MemFree:         1234567 kB
MemAvailable:    9876543 kB
Buffers:          123456 kB
HugePages_Total:       0
"""


def test_registration_declares_the_cpu_platform():
    assert registration.tenon_platforms() == [
        PlatformSpec(
            name="cpu",
            target="tenon.plugins.platforms.cpu:CpuPlatform",
            probe="tenon.plugins.platforms.cpu_probe:is_available",
            api_version=API_VERSION,
            priority=0,
            description="The host CPU: always available, the fallback when no accelerator is",
            capabilities=PlatformCapabilities(
                device_type="cpu", supports_graphs=False, collectives_backend="gloo"
            ),
        )
    ]


def test_probe_and_platform_attributes():
    assert cpu_probe.is_available() is True
    platform = CpuPlatform()
    assert isinstance(platform, Platform)
    assert (platform.name, platform.device_type, platform.collectives_backend) == (
        "cpu",
        "cpu",
        "gloo",
    )
    assert platform.preferred_attention_backends == ()
    assert platform.device(0) == torch.device("cpu")
    assert platform.device(3) == torch.device("cpu")
    assert platform.create_graph() is None
    assert platform.create_stream(torch.device("cpu")) is None
    assert platform.pin_memory_available() is False


def test_parse_meminfo():
    assert parse_meminfo(MEMINFO) == MemoryInfo(
        total_bytes=16318604 * 1024, free_bytes=9876543 * 1024
    )
    old_kernel = "MemTotal: 2048 kB\nMemFree: 1024 kB\n"
    assert parse_meminfo(old_kernel) == MemoryInfo(total_bytes=2048 * 1024, free_bytes=1024 * 1024)


def test_memory_info_reads_the_given_file_or_falls_back_to_sysconf(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(MEMINFO)
    assert host_memory_info(str(meminfo)).total_bytes == 16318604 * 1024
    fallback = host_memory_info(str(tmp_path / "absent"))
    assert fallback.total_bytes == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < fallback.free_bytes <= fallback.total_bytes


def test_platform_memory_info_is_this_machines():
    info = CpuPlatform().memory_info(torch.device("cpu"))
    assert info.total_bytes == host_memory_info().total_bytes
    assert 0 < info.free_bytes <= info.total_bytes


def test_auto_dtype_is_bfloat16_only_with_native_bf16(tmp_path) -> None:
    from tenon.plugins.platforms.cpu import CpuPlatform, cpu_has_native_bf16

    with_bf16 = tmp_path / "with"
    with_bf16.write_text("processor: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n")
    without = tmp_path / "without"
    without.write_text("processor: 0\nflags\t\t: fpu avx2 avx512f\n")
    assert cpu_has_native_bf16(str(with_bf16)) is True
    assert cpu_has_native_bf16(str(without)) is False
    assert cpu_has_native_bf16(str(tmp_path / "missing")) is False
    expected = "bfloat16" if cpu_has_native_bf16() else "float32"
    assert CpuPlatform().default_dtype("float32") == expected
