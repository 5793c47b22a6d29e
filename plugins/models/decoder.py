"""The decoder layers shared by the Llama family (Llama, Mistral, Qwen2, Qwen3).

The four architectures differ only in a few switches, gathered in `DecoderTraits`; each
architecture module is a thin subclass of `DecoderForCausalLM` that names its traits.

One decoder layer, with the residual carried beside the hidden states so each RMSNorm can fuse
the residual add:

    hidden, residual -> input_layernorm(hidden + residual)
                     -> self_attn: qkv_proj -> [q_norm, k_norm] -> rope -> attention -> o_proj
                     -> post_attention_layernorm(hidden + residual)
                     -> mlp: gate_up_proj -> silu(gate) * up -> down_proj
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from tenon.layers.activation import SiluAndMul
from tenon.layers.attention import Attention
from tenon.layers.embedding import VocabEmbedding
from tenon.layers.fused import norm_then_linear, silu_and_mul_then_linear
from tenon.layers.linear import Linear, MergedLinear
from tenon.layers.norm import RMSNorm
from tenon.layers.rotary import RotaryEmbedding, RotaryStep, rope_parameters_from_config
from tenon.spec.attention import AttentionLayer, ForwardContext
from tenon.spec.model import ModelBuildContext


@attrs.frozen(kw_only=True)
class DecoderTraits:
    """What sets one architecture of the family apart from Llama."""

    # Biases on the q/k/v and the output projections. None: the config's `attention_bias`
    # decides both (False when the config lacks it), as Llama and Qwen3 do.
    qkv_bias: bool | None = None
    o_bias: bool | None = None
    # Qwen3: RMSNorm over each head of q and k, before rotary embedding.
    qk_norm: bool = False


@attrs.frozen(kw_only=True)
class DecoderShape:
    """The sizes every layer shares, read once from the HF config."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_size: int  # from `config.head_dim` where set: may differ from hidden_size / num_heads
    vocab_size: int
    rms_norm_eps: float
    qkv_bias: bool
    o_bias: bool
    mlp_bias: bool
    sliding_windows: tuple[int | None, ...]  # per layer; None: full attention

    @classmethod
    def from_config(cls, config: Any, traits: DecoderTraits) -> DecoderShape:
        hidden_act = getattr(config, "hidden_act", "silu")
        if hidden_act != "silu":
            raise ValueError(
                f"hidden_act {hidden_act!r} is not supported by this model family; "
                "only 'silu' checkpoints can be served"
            )
        num_heads = config.num_attention_heads
        num_layers = config.num_hidden_layers
        attention_bias = bool(getattr(config, "attention_bias", False))
        return cls(
            hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size,
            num_layers=num_layers,
            num_heads=num_heads,
            num_kv_heads=getattr(config, "num_key_value_heads", None) or num_heads,
            head_size=getattr(config, "head_dim", None) or config.hidden_size // num_heads,
            vocab_size=config.vocab_size,
            rms_norm_eps=config.rms_norm_eps,
            qkv_bias=attention_bias if traits.qkv_bias is None else traits.qkv_bias,
            o_bias=attention_bias if traits.o_bias is None else traits.o_bias,
            mlp_bias=bool(getattr(config, "mlp_bias", False)),
            sliding_windows=_sliding_windows(config, num_layers),
        )


def _sliding_windows(config: Any, num_layers: int) -> tuple[int | None, ...]:
    """Per-layer windows: Qwen2/Qwen3 list `layer_types`; Mistral windows every layer."""
    window = getattr(config, "sliding_window", None)
    if window is None:
        return (None,) * num_layers
    layer_types = getattr(config, "layer_types", None)
    if layer_types is None:
        return (window,) * num_layers
    return tuple(window if kind == "sliding_attention" else None for kind in layer_types)


class DecoderAttention(torch.nn.Module):
    def __init__(
        self,
        shape: DecoderShape,
        traits: DecoderTraits,
        rotary_emb: RotaryEmbedding,
        layer_index: int,
        build: ModelBuildContext,
        prefix: str,
    ) -> None:
        super().__init__()
        head_size = shape.head_size
        self.head_size = head_size
        self.q_size = shape.num_heads * head_size
        self.kv_size = shape.num_kv_heads * head_size
        self.qkv_proj = MergedLinear(
            shape.hidden_size,
            [self.q_size, self.kv_size, self.kv_size],
            bias=shape.qkv_bias,
            quant_scheme=build.quant_scheme,
            prefix=f"{prefix}.qkv_proj",
            dtype=build.dtype,
            device=build.device,
        )
        self.o_proj = Linear(
            self.q_size,
            shape.hidden_size,
            bias=shape.o_bias,
            quant_scheme=build.quant_scheme,
            prefix=f"{prefix}.o_proj",
            dtype=build.dtype,
            device=build.device,
        )
        self.q_norm: RMSNorm | None = None
        self.k_norm: RMSNorm | None = None
        if traits.qk_norm:
            norm_args = {"dtype": build.dtype, "device": build.device}
            self.q_norm = RMSNorm(head_size, shape.rms_norm_eps, **norm_args)
            self.k_norm = RMSNorm(head_size, shape.rms_norm_eps, **norm_args)
        # Shared by every layer: one cos/sin table, not one per layer.
        self.rotary_emb = rotary_emb
        self.num_heads = shape.num_heads
        self.attn = Attention(
            AttentionLayer(
                layer_index=layer_index,
                num_heads=shape.num_heads,
                num_kv_heads=shape.num_kv_heads,
                head_size=head_size,
                scale=head_size**-0.5,
                sliding_window=shape.sliding_windows[layer_index],
            )
        )

    def _norm_heads(self, norm: RMSNorm, x: torch.Tensor) -> torch.Tensor:
        # x: [num_tokens, num_heads * head_size]; the norm runs over each head separately
        num_tokens = x.shape[0]
        return norm(x.reshape(-1, self.head_size)).view(num_tokens, -1)

    def forward(
        self,
        rotary: RotaryStep,  # from RotaryEmbedding.step, once per step
        qkv: torch.Tensor,  # [num_tokens, (num_heads + 2 * num_kv_heads) * head_size]
        context: ForwardContext,
    ) -> torch.Tensor:  # [num_tokens, hidden_size]
        """Everything after the qkv projection, which the decoder layer runs together with its
        input norm (`tenon.layers.fused.norm_then_linear`)."""
        num_tokens = qkv.shape[0]
        q, k, v = qkv.split([self.q_size, self.kv_size, self.kv_size], dim=-1)
        if self.q_norm is not None and self.k_norm is not None:
            q = self._norm_heads(self.q_norm, q)
            k = self._norm_heads(self.k_norm, k)
            q = self.rotary_emb.rotate(rotary, q.view(num_tokens, -1, self.head_size))
            k = self.rotary_emb.rotate(rotary, k.view(num_tokens, -1, self.head_size))
        else:
            fused = self.attn.fused_rotary(rotary, self.rotary_emb, context, qkv.dtype)
            if fused is not None:  # the backend rotates q and k inside its kernels
                # q, k and v stay views of qkv: a rotating backend reads strided rows (the copy
                # of v cost a launch a layer at decode batch 64).
                attn_output = self.attn(q, k, v, context, fused)
                return self.o_proj(attn_output)
            # q and k are adjacent columns of qkv: one rotation covers the heads of both
            # (measured 8 against 56 us per layer for one decode row, with cos/sin looked up once).
            qk = qkv[:, : self.q_size + self.kv_size].view(num_tokens, -1, self.head_size)
            rotated = self.rotary_emb.rotate(rotary, qk)  # [num_tokens, H + Hkv, D]
            q, k = rotated[:, : self.num_heads], rotated[:, self.num_heads :]
        # A backend that accepts strided rows reads the views of qkv (or of `rotated`); others
        # get dense rows (views of one decode row already are: these copy only when several
        # tokens share the step).
        # attn_output: [num_tokens, num_heads * head_size]
        if context.attention_backend.accepts_strided_rows:
            attn_output = self.attn(q.reshape(num_tokens, self.q_size), k.reshape(num_tokens, self.kv_size),
                                    v, context)
        else:
            attn_output = self.attn(q.contiguous().view(num_tokens, self.q_size),
                                    k.contiguous().view(num_tokens, self.kv_size), v.contiguous(), context)
        return self.o_proj(attn_output)


class DecoderMLP(torch.nn.Module):
    def __init__(self, shape: DecoderShape, build: ModelBuildContext, prefix: str) -> None:
        super().__init__()
        self.gate_up_proj = MergedLinear(
            shape.hidden_size,
            [shape.intermediate_size, shape.intermediate_size],
            bias=shape.mlp_bias,
            quant_scheme=build.quant_scheme,
            prefix=f"{prefix}.gate_up_proj",
            dtype=build.dtype,
            device=build.device,
        )
        self.down_proj = Linear(
            shape.intermediate_size,
            shape.hidden_size,
            bias=shape.mlp_bias,
            quant_scheme=build.quant_scheme,
            prefix=f"{prefix}.down_proj",
            dtype=build.dtype,
            device=build.device,
        )
        self.act_fn = SiluAndMul()

    def forward(self, gate_up: torch.Tensor) -> torch.Tensor:  # [T, 2 * I] -> [T, hidden_size]
        """The activation and the down projection (one fused op where the device has one); the
        decoder layer runs gate_up_proj together with its post-attention norm."""
        return silu_and_mul_then_linear(self.act_fn, self.down_proj, gate_up)


class DecoderLayer(torch.nn.Module):
    def __init__(
        self,
        shape: DecoderShape,
        traits: DecoderTraits,
        rotary_emb: RotaryEmbedding,
        layer_index: int,
        build: ModelBuildContext,
        prefix: str,
    ) -> None:
        super().__init__()
        norm_args = {"dtype": build.dtype, "device": build.device}
        self.input_layernorm = RMSNorm(shape.hidden_size, shape.rms_norm_eps, **norm_args)
        self.self_attn = DecoderAttention(
            shape, traits, rotary_emb, layer_index, build, f"{prefix}.self_attn"
        )
        self.post_attention_layernorm = RMSNorm(shape.hidden_size, shape.rms_norm_eps, **norm_args)
        self.mlp = DecoderMLP(shape, build, f"{prefix}.mlp")

    def forward(
        self,
        rotary: RotaryStep,  # from RotaryEmbedding.step, once per step
        hidden_states: torch.Tensor,  # [num_tokens, hidden_size]
        residual: torch.Tensor | None,  # [num_tokens, hidden_size]; None in the first layer
        context: ForwardContext,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # (hidden_states, residual), both [T, hidden_size]
        # Each norm runs with the projection after it (one fused op on devices that have one).
        qkv_proj = self.self_attn.qkv_proj
        if residual is None:
            residual = hidden_states
            qkv = norm_then_linear(self.input_layernorm, qkv_proj, hidden_states)
        else:
            qkv, residual = norm_then_linear(self.input_layernorm, qkv_proj, hidden_states, residual)
        hidden_states = self.self_attn(rotary, qkv, context)
        gate_up, residual = norm_then_linear(
            self.post_attention_layernorm, self.mlp.gate_up_proj, hidden_states, residual
        )
        return self.mlp(gate_up), residual


class DecoderModel(torch.nn.Module):
    """Embedding, the decoder layers and the final norm (HF's `model.` prefix)."""

    def __init__(
        self,
        config: Any,
        shape: DecoderShape,
        traits: DecoderTraits,
        build: ModelBuildContext,
        prefix: str = "model",
    ) -> None:
        super().__init__()
        self.embed_tokens = VocabEmbedding(
            shape.vocab_size, shape.hidden_size, dtype=build.dtype, device=build.device
        )
        base, rope_scaling = rope_parameters_from_config(config)
        rotary_emb = RotaryEmbedding(
            shape.head_size,
            shape.head_size,
            config.max_position_embeddings,
            base,
            rope_scaling,
            dtype=build.dtype,
            device=build.device,
        )
        self.rotary_emb = rotary_emb  # the same module every layer holds
        self.layers = torch.nn.ModuleList(
            DecoderLayer(shape, traits, rotary_emb, index, build, f"{prefix}.layers.{index}")
            for index in range(shape.num_layers)
        )
        self.norm = RMSNorm(
            shape.hidden_size, shape.rms_norm_eps, dtype=build.dtype, device=build.device
        )

    def forward(
        self,
        input_ids: torch.Tensor,  # int64 [num_tokens]
        positions: torch.Tensor,  # int64 [num_tokens]
        context: ForwardContext,
    ) -> torch.Tensor:  # [num_tokens, hidden_size]
        hidden_states = self.embed_tokens(input_ids)
        # Looked up once per step rather than once per layer.
        rotary = self.rotary_emb.step(positions)
        residual: torch.Tensor | None = None
        for layer in self.layers:
            hidden_states, residual = layer(rotary, hidden_states, residual, context)
        if residual is None:
            return self.norm(hidden_states)
        hidden_states, _ = self.norm(hidden_states, residual)
        return hidden_states
