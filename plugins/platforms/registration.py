"""Registers the CPU platform, exactly as a third-party platform package would."""

from __future__ import annotations

from collections.abc import Sequence

from tenon.spec import API_VERSION, PlatformCapabilities, PlatformSpec, hookimpl


@hookimpl
def tenon_platforms() -> Sequence[PlatformSpec]:
    return [
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
