"""GPTNeoXForCausalLM on tenon.layers, matching HF transformers' implementation.

What sets it apart from the Llama family:
- LayerNorm with bias (not RMSNorm), and a GELU MLP without a gate;
- one fused `query_key_value` projection laid out per head, [q_h | k_h | v_h] for head h (HF's
  layout, loaded as is and split with a view);
- rotary embedding on the first `partial_rotary_factor` of each head's features only;
- with `use_parallel_residual`, attention and MLP both read the layer's input:
      x + attention(ln_1(x)) + mlp(ln_2(x))
  otherwise the usual sequential form.
Checkpoint names are HF's (`gpt_neox.layers.N.attention.query_key_value.weight`, ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from tenon.layers import Attention, Linear, LMHead, RotaryEmbedding, VocabEmbedding, load_param
from tenon.spec.attention import AttentionLayer, ForwardContext
from tenon.spec.model import KVCacheSpec, ModelArchitecture, ModelBuildContext

# Buffers old checkpoints saved, which are not parameters here.
_SKIPPED_SUFFIXES = (".attention.bias", ".attention.masked_bias", ".rotary_emb.inv_freq")


def _partial_rotary_factor(config: Any) -> float:
    rope_parameters = getattr(config, "rope_parameters", None) or {}
    factor = rope_parameters.get("partial_rotary_factor", getattr(config, "rotary_pct", 1.0))
    return float(factor)


def _rope_theta(config: Any) -> float:
    rope_parameters = getattr(config, "rope_parameters", None) or {}
    return float(rope_parameters.get("rope_theta", getattr(config, "rotary_emb_base", 10000.0)))


class GPTNeoXAttention(torch.nn.Module):
    def __init__(
        self, config: Any, rotary: RotaryEmbedding, layer_index: int, build: ModelBuildContext,
        prefix: str,
    ) -> None:  # fmt: skip
        super().__init__()
        hidden_size = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_size = hidden_size // self.num_heads
        linear_args = {"quant_scheme": build.quant_scheme, "dtype": build.dtype, "device": build.device}
        self.query_key_value = Linear(
            hidden_size, 3 * hidden_size, bias=config.attention_bias,
            prefix=f"{prefix}.query_key_value", **linear_args,
        )  # fmt: skip
        self.dense = Linear(
            hidden_size, hidden_size, bias=config.attention_bias, prefix=f"{prefix}.dense",
            **linear_args,
        )  # fmt: skip
        self.rotary = rotary
        self.attn = Attention(
            AttentionLayer(
                layer_index=layer_index,
                num_heads=self.num_heads,
                num_kv_heads=self.num_heads,
                head_size=self.head_size,
                scale=self.head_size**-0.5,
            )
        )

    def forward(
        self,
        positions: torch.Tensor,  # int64 [num_tokens]
        hidden_states: torch.Tensor,  # [num_tokens, hidden_size]
        context: ForwardContext,
    ) -> torch.Tensor:  # [num_tokens, hidden_size]
        num_tokens = hidden_states.shape[0]
        # qkv: [num_tokens, num_heads, 3, head_size]: each head's q, k and v side by side
        qkv = self.query_key_value(hidden_states).view(num_tokens, self.num_heads, 3, self.head_size)
        query = qkv[:, :, 0].reshape(num_tokens, -1)  # [num_tokens, num_heads * head_size]
        key = qkv[:, :, 1].reshape(num_tokens, -1)
        value = qkv[:, :, 2].reshape(num_tokens, -1)
        query, key = self.rotary(positions, query, key)
        return self.dense(self.attn(query, key, value, context))


class GPTNeoXMLP(torch.nn.Module):
    def __init__(self, config: Any, build: ModelBuildContext, prefix: str) -> None:
        super().__init__()
        if config.hidden_act != "gelu":
            raise ValueError(
                f"hidden_act {config.hidden_act!r} is not supported by example-gpt-neox; only "
                "'gelu' checkpoints (Pythia, GPT-NeoX-20B) can be served"
            )
        linear_args = {"quant_scheme": build.quant_scheme, "dtype": build.dtype, "device": build.device}
        self.dense_h_to_4h = Linear(
            config.hidden_size, config.intermediate_size, bias=True,
            prefix=f"{prefix}.dense_h_to_4h", **linear_args,
        )  # fmt: skip
        self.dense_4h_to_h = Linear(
            config.intermediate_size, config.hidden_size, bias=True,
            prefix=f"{prefix}.dense_4h_to_h", **linear_args,
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [num_tokens, hidden_size]
        return self.dense_4h_to_h(torch.nn.functional.gelu(self.dense_h_to_4h(x)))


class GPTNeoXLayer(torch.nn.Module):
    def __init__(
        self, config: Any, rotary: RotaryEmbedding, layer_index: int, build: ModelBuildContext,
        prefix: str,
    ) -> None:  # fmt: skip
        super().__init__()
        norm_args = {"eps": config.layer_norm_eps, "dtype": build.dtype, "device": build.device}
        self.use_parallel_residual = bool(config.use_parallel_residual)
        self.input_layernorm = torch.nn.LayerNorm(config.hidden_size, **norm_args)
        self.post_attention_layernorm = torch.nn.LayerNorm(config.hidden_size, **norm_args)
        self.attention = GPTNeoXAttention(config, rotary, layer_index, build, f"{prefix}.attention")
        self.mlp = GPTNeoXMLP(config, build, f"{prefix}.mlp")

    def forward(
        self,
        positions: torch.Tensor,  # int64 [num_tokens]
        hidden_states: torch.Tensor,  # [num_tokens, hidden_size]
        context: ForwardContext,
    ) -> torch.Tensor:  # [num_tokens, hidden_size]
        attn_output = self.attention(positions, self.input_layernorm(hidden_states), context)
        if self.use_parallel_residual:
            # HF's order of the three-way sum, so float rounding matches too.
            mlp_output = self.mlp(self.post_attention_layernorm(hidden_states))
            return mlp_output + attn_output + hidden_states
        attn_output = attn_output + hidden_states
        return self.mlp(self.post_attention_layernorm(attn_output)) + attn_output


class GPTNeoXModel(torch.nn.Module):
    """HF's `gpt_neox.` prefix: embedding, layers, final norm."""

    def __init__(self, config: Any, build: ModelBuildContext) -> None:
        super().__init__()
        head_size = config.hidden_size // config.num_attention_heads
        self.embed_in = VocabEmbedding(
            config.vocab_size, config.hidden_size, dtype=build.dtype, device=build.device
        )
        rotary = RotaryEmbedding(
            head_size,
            int(head_size * _partial_rotary_factor(config)),
            config.max_position_embeddings,
            _rope_theta(config),
            None,
            dtype=build.dtype,
            device=build.device,
        )
        self.layers = torch.nn.ModuleList(
            GPTNeoXLayer(config, rotary, index, build, f"gpt_neox.layers.{index}")
            for index in range(config.num_hidden_layers)
        )
        self.final_layer_norm = torch.nn.LayerNorm(
            config.hidden_size, eps=config.layer_norm_eps, dtype=build.dtype, device=build.device
        )

    def forward(
        self, input_ids: torch.Tensor, positions: torch.Tensor, context: ForwardContext
    ) -> torch.Tensor:  # [num_tokens, hidden_size]
        hidden_states = self.embed_in(input_ids)
        for layer in self.layers:
            hidden_states = layer(positions, hidden_states, context)
        return self.final_layer_norm(hidden_states)


class GPTNeoXForCausalLM(torch.nn.Module, ModelArchitecture):
    def __init__(self, config: Any, build: ModelBuildContext) -> None:
        super().__init__()
        self.config = config
        self.dtype = build.dtype
        self.gpt_neox = GPTNeoXModel(config, build)
        self.tie_word_embeddings = bool(getattr(config, "tie_word_embeddings", False))
        self.lm_head = LMHead(
            config.vocab_size,
            config.hidden_size,
            dtype=build.dtype,
            device=build.device,
            tied_to=self.gpt_neox.embed_in if self.tie_word_embeddings else None,
        )

    @classmethod
    def from_config(cls, config: Any, build: ModelBuildContext) -> GPTNeoXForCausalLM:
        return cls(config, build)

    def forward(
        self, input_ids: torch.Tensor, positions: torch.Tensor, context: ForwardContext
    ) -> torch.Tensor:  # [num_tokens, hidden_size]
        return self.gpt_neox(input_ids, positions, context)

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden_states)  # float32 [num_rows, vocab_size]

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        params = dict(self.named_parameters())
        loaded: set[str] = set()
        for name, tensor in weights:
            if name.endswith(_SKIPPED_SUFFIXES):
                continue
            if name == "embed_out.weight":  # the LM head's name before transformers 4.x renamed it
                name = "lm_head.weight"
            if self.tie_word_embeddings and name == "lm_head.weight":
                continue
            if name not in params:
                raise ValueError(
                    f"checkpoint weight {name!r} has no parameter in GPTNeoXForCausalLM; check "
                    "that the checkpoint's `architectures` is GPTNeoXForCausalLM"
                )
            load_param(params, name, tensor)
            loaded.add(name)
        return loaded

    def kv_cache_spec(self) -> KVCacheSpec:
        config = self.config
        return KVCacheSpec(
            num_layers=config.num_hidden_layers,
            num_kv_heads=config.num_attention_heads,
            head_size=config.hidden_size // config.num_attention_heads,
            dtype=str(self.dtype).removeprefix("torch."),
        )
