"""The plugin module the entry point names: declarations only, nothing heavy imported."""

from __future__ import annotations

from collections.abc import Sequence

from tenon.spec import AttentionBackendSpec, AttentionCapabilities, hookimpl


@hookimpl
def tenon_attention_backends() -> Sequence[AttentionBackendSpec]:
    return [
        AttentionBackendSpec(
            name="example-sdpa",
            target="tenon_example_good.sdpa:SdpaAttentionBackend",
            # The contract version this plugin was written against, pinned on purpose.
            api_version="1.0",
            # Below the reference backend (0): installing the example never changes a default.
            priority=-10,
            description="torch scaled_dot_product_attention, one call per request",
            capabilities=AttentionCapabilities(
                device_types=("cpu", "cuda"),
                dtypes=("float32", "bfloat16", "float16"),
                head_sizes=None,
                supports_graphs=False,
            ),
        )
    ]
