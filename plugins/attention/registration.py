"""Registers the reference attention backend (imports nothing heavy)."""

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
        )
    ]
