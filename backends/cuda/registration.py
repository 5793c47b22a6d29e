"""Entry point of the CUDA platform package (group "tenon.plugins", name "cuda")."""

from __future__ import annotations

from tenon.spec import API_VERSION, PlatformCapabilities, PlatformSpec, hookimpl


@hookimpl
def tenon_platforms() -> list[PlatformSpec]:
    return [
        PlatformSpec(
            name="cuda",
            target="tenon_cuda.platform:CudaPlatform",
            probe="tenon_cuda.probe:is_available",
            api_version=API_VERSION,
            priority=10,
            description="NVIDIA GPUs through torch.cuda",
            capabilities=PlatformCapabilities(
                device_type="cuda",
                dtypes=("float32", "bfloat16", "float16"),
                supports_graphs=True,
                collectives_backend="nccl",
            ),
        )
    ]
