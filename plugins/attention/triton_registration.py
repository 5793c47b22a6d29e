"""Registers the Triton paged-attention backend (imports neither triton nor the kernels)."""

from __future__ import annotations

from collections.abc import Sequence

from tenon.spec import API_VERSION, AttentionBackendSpec, AttentionCapabilities, hookimpl


@hookimpl
def tenon_attention_backends() -> Sequence[AttentionBackendSpec]:
    return [
        AttentionBackendSpec(
            name="triton",
            target="tenon.plugins.attention.triton_paged.backend:TritonPagedAttentionBackend",
            api_version=API_VERSION,
            priority=20,
            description="Triton paged attention: split-KV decode and varlen prefill kernels, "
            "graph-safe, on CUDA and ROCm",
            capabilities=AttentionCapabilities(
                device_types=("cuda", "rocm"),
                dtypes=("float32", "bfloat16", "float16"),
                head_sizes=(64, 80, 96, 128, 256),
                block_sizes=(16, 32, 64, 128),
                supports_graphs=True,
                batch_invariant=False,  # the decode split count follows the request count
                supports_sliding_window=True,
            ),
        ),
    ]
