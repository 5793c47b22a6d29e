"""The one attention layer class models use: hands the work to the step's attention backend."""

from __future__ import annotations

import torch

from tenon.layers.rotary import RotaryEmbedding, RotaryStep
from tenon.spec.attention import AttentionLayer, ForwardContext, FusedRotary


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
        rotary: FusedRotary | None = None,  # from `fused_rotary`: query and key not rotated yet
    ) -> torch.Tensor:  # [num_tokens, num_heads * head_size]
        layer = self.layer
        num_tokens = query.shape[0]
        args = (
            layer,
            query.reshape(num_tokens, layer.num_heads, layer.head_size),
            key.reshape(num_tokens, layer.num_kv_heads, layer.head_size),
            value.reshape(num_tokens, layer.num_kv_heads, layer.head_size),
            context.kv_layers[layer.layer_index],
            context.attention_metadata,
        )
        backend = context.attention_backend
        output = backend.forward(*args) if rotary is None else backend.forward_rotating(*args, rotary)
        return output.reshape(num_tokens, layer.num_heads * layer.head_size)

    def fused_rotary(
        self,
        step: RotaryStep,
        embedding: RotaryEmbedding,
        context: ForwardContext,
        dtype: torch.dtype,
    ) -> FusedRotary | None:
        """The rotation to hand the backend this step (then skip the model's own), or None:
        where the backend rotates inside its kernels this step (`rotates_this_step`) and the
        embedding rotates whole heads with tables of the activations' dtype."""
        if embedding.rotary_dim != self.layer.head_size or embedding.cos_cache.dtype != dtype:
            return None
        backend = context.attention_backend
        if not backend.rotates_this_step(self.layer, context.attention_metadata, dtype):
            return None
        return FusedRotary(
            positions=step.positions,
            cos_cache=embedding.cos_cache,
            signed_sin_cache=embedding.signed_sin_cache,
        )

    def extra_repr(self) -> str:
        layer = self.layer
        return (
            f"layer_index={layer.layer_index}, num_heads={layer.num_heads}, "
            f"num_kv_heads={layer.num_kv_heads}, head_size={layer.head_size}"
        )
