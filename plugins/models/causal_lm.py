"""`DecoderForCausalLM`: the Llama family's `ModelArchitecture`, parameterised by its traits.

Checkpoint names are HF's. Our fused projections take several checkpoint tensors each, one shard
per tensor, in this order:

    model.layers.N.self_attn.q_proj.{weight,bias} -> model.layers.N.self_attn.qkv_proj shard 0
    model.layers.N.self_attn.k_proj.{weight,bias} -> model.layers.N.self_attn.qkv_proj shard 1
    model.layers.N.self_attn.v_proj.{weight,bias} -> model.layers.N.self_attn.qkv_proj shard 2
    model.layers.N.mlp.gate_proj.{weight,bias}    -> model.layers.N.mlp.gate_up_proj shard 0
    model.layers.N.mlp.up_proj.{weight,bias}      -> model.layers.N.mlp.gate_up_proj shard 1

Every other name maps to the parameter of the same name. `rotary_emb.inv_freq` (old checkpoints
saved the rope buffer) is skipped, and so is `lm_head.weight` when the head is tied to the
embedding (HF's `state_dict()` repeats the tied tensor under that name).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import torch

from tenon.layers.embedding import LMHead
from tenon.layers.weights import load_param
from tenon.plugins.models.decoder import DecoderModel, DecoderShape, DecoderTraits
from tenon.spec.attention import ForwardContext
from tenon.spec.model import KVCacheSpec, ModelArchitecture, ModelBuildContext

# (checkpoint name part, our fused parameter's name part, shard index)
_FUSED_SHARDS: tuple[tuple[str, str, int], ...] = (
    (".self_attn.q_proj.", ".self_attn.qkv_proj.", 0),
    (".self_attn.k_proj.", ".self_attn.qkv_proj.", 1),
    (".self_attn.v_proj.", ".self_attn.qkv_proj.", 2),
    (".mlp.gate_proj.", ".mlp.gate_up_proj.", 0),
    (".mlp.up_proj.", ".mlp.gate_up_proj.", 1),
)


def fused_target(checkpoint_name: str) -> tuple[str, int | None]:
    """Our parameter name and shard index for an HF checkpoint name (None: the whole param)."""
    for checkpoint_part, fused_part, shard_index in _FUSED_SHARDS:
        if checkpoint_part in checkpoint_name:
            return checkpoint_name.replace(checkpoint_part, fused_part), shard_index
    return checkpoint_name, None


class DecoderForCausalLM(torch.nn.Module, ModelArchitecture):
    """A decoder-only causal LM of the Llama family; subclasses set `traits`."""

    traits: ClassVar[DecoderTraits] = DecoderTraits()

    def __init__(self, config: Any, build: ModelBuildContext) -> None:
        super().__init__()
        self.config = config
        self.shape = DecoderShape.from_config(config, self.traits)
        self.dtype = build.dtype
        self.model = DecoderModel(config, self.shape, self.traits, build)
        self.tie_word_embeddings = bool(getattr(config, "tie_word_embeddings", False))
        self.lm_head = LMHead(
            self.shape.vocab_size,
            self.shape.hidden_size,
            dtype=build.dtype,
            device=build.device,
            tied_to=self.model.embed_tokens if self.tie_word_embeddings else None,
        )

    @classmethod
    def from_config(cls, config: Any, build: ModelBuildContext) -> DecoderForCausalLM:
        return cls(config, build)

    def forward(
        self,
        input_ids: torch.Tensor,  # int64 [num_tokens]
        positions: torch.Tensor,  # int64 [num_tokens]
        context: ForwardContext,
    ) -> torch.Tensor:  # [num_tokens, hidden_size]
        return self.model(input_ids, positions, context)

    def compute_logits(
        self,
        hidden_states: torch.Tensor,  # [num_rows, hidden_size]
    ) -> torch.Tensor:  # float32 [num_rows, vocab_size]
        return self.lm_head(hidden_states)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        params = dict(self.named_parameters())
        loaded_names: set[str] = set()
        for checkpoint_name, tensor in weights:
            if "rotary_emb.inv_freq" in checkpoint_name:
                continue
            if self.tie_word_embeddings and checkpoint_name == "lm_head.weight":
                continue
            param_name, shard_index = fused_target(checkpoint_name)
            if param_name not in params:
                raise ValueError(
                    f"checkpoint weight {checkpoint_name!r} has no parameter in "
                    f"{type(self).__name__}; check that the checkpoint's `architectures` "
                    "matches this model"
                )
            load_param(params, param_name, tensor, shard_index)
            loaded_names.add(param_name)
        return loaded_names

    def kv_cache_spec(self) -> KVCacheSpec:
        return KVCacheSpec(
            num_layers=self.shape.num_layers,
            num_kv_heads=self.shape.num_kv_heads,
            head_size=self.shape.head_size,
            dtype=str(self.dtype).removeprefix("torch."),
        )
