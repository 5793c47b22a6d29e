"""The one attention layer class models use: hands the work to the step's attention backend."""

from __future__ import annotations

import torch

from tenon.spec.attention import AttentionLayer, ForwardContext


class Attention(torch.nn.Module):
    """Paged attention for one layer; the backend and KV cache come in the `ForwardContext`."""

    def __init__(self, layer: AttentionLayer) -> None:
        super().__init__()
        self.layer = layer

    def forward(
        self,
        query: torch.Tensor,  # [num_tokens, num_heads * head_size]
        key: torch.Tensor,  # [num_tokens, num_kv_heads * head_size]
        value: torch.Tensor,  # [num_tokens, num_kv_heads * head_size]
        context: ForwardContext,
    ) -> torch.Tensor:  # [num_tokens, num_heads * head_size]
        layer = self.layer
        num_tokens = query.shape[0]
        output = context.attention_backend.forward(
            layer,
            query.reshape(num_tokens, layer.num_heads, layer.head_size),
            key.reshape(num_tokens, layer.num_kv_heads, layer.head_size),
            value.reshape(num_tokens, layer.num_kv_heads, layer.head_size),
            context.kv_layers[layer.layer_index],
            context.attention_metadata,
        )
        return output.reshape(num_tokens, layer.num_heads * layer.head_size)

    def extra_repr(self) -> str:
        layer = self.layer
        return (
            f"layer_index={layer.layer_index}, num_heads={layer.num_heads}, "
            f"num_kv_heads={layer.num_kv_heads}, head_size={layer.head_size}"
        )
