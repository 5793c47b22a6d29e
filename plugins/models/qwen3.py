"""Qwen3ForCausalLM: Llama with an RMSNorm over each head of q and k before rotary embedding."""

from __future__ import annotations

from typing import ClassVar

from tenon.plugins.models.causal_lm import DecoderForCausalLM
from tenon.plugins.models.decoder import DecoderTraits


class Qwen3ForCausalLM(DecoderForCausalLM):
    traits: ClassVar[DecoderTraits] = DecoderTraits(qk_norm=True)
