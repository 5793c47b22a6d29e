"""The plugin module the entry point names: declarations only, nothing heavy imported."""

from __future__ import annotations

from collections.abc import Sequence

from tenon.spec import PlatformCapabilities, PlatformSpec, hookimpl

SPEC = PlatformSpec(
    name="example-cpu",
    target="tenon_example_platform.platform:ReproducibleCpuPlatform",
    # Kept apart from the platform, so probing imports nothing heavy.
    probe="tenon_example_platform.probe:is_available",
    api_version="1.0",
    # Below the built-in CPU platform (0): installing the example changes no default; select it
    # with `--device example-cpu` (`LLM(..., device="example-cpu")`).
    priority=-10,
    description="the host CPU, float32 by default, batch-invariant reference attention",
    capabilities=PlatformCapabilities(device_type="cpu", dtypes=("float32", "bfloat16")),
)


@hookimpl
def tenon_platforms() -> Sequence[PlatformSpec]:
    return [SPEC]
