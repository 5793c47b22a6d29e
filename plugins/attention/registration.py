"""Registers the built-in attention backends (imports nothing heavy)."""

from __future__ import annotations

from collections.abc import Sequence

from tenon.spec import API_VERSION, AttentionBackendSpec, AttentionCapabilities, hookimpl


@hookimpl
def tenon_attention_backends() -> Sequence[AttentionBackendSpec]:
    return [
        AttentionBackendSpec(
            name="reference",
            target="tenon.plugins.attention.reference:ReferenceAttentionBackend",
            api_version=API_VERSION,
            priority=0,
            description="plain torch paged attention on any device; the correctness oracle",
            capabilities=AttentionCapabilities(
                device_types=None,
                dtypes=None,
                head_sizes=None,
                block_sizes=None,
                supports_graphs=False,
                batch_invariant=True,
                supports_sliding_window=True,
            ),
        ),
        AttentionBackendSpec(
            name="torch-sdpa",
            target="tenon.plugins.attention.sdpa:SdpaAttentionBackend",
            api_version=API_VERSION,
            priority=10,
            description="torch scaled_dot_product_attention, one call per layer for the batch",
            capabilities=AttentionCapabilities(
                device_types=None,
                dtypes=("float32", "bfloat16", "float16"),
                head_sizes=None,
                block_sizes=None,
                supports_graphs=False,
                batch_invariant=False,
                supports_sliding_window=True,
            ),
        ),
    ]
