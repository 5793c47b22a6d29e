"""LlamaForCausalLM: the family's base; `attention_bias` and `mlp_bias` come from the config."""

from __future__ import annotations

from typing import ClassVar

from tenon.plugins.models.causal_lm import DecoderForCausalLM
from tenon.plugins.models.decoder import DecoderTraits


class LlamaForCausalLM(DecoderForCausalLM):
    traits: ClassVar[DecoderTraits] = DecoderTraits()
