"""Qwen2ForCausalLM: Llama with a bias on q, k and v and none on o (whatever the config says)."""

from __future__ import annotations

from typing import ClassVar

from tenon.plugins.models.causal_lm import DecoderForCausalLM
from tenon.plugins.models.decoder import DecoderTraits


class Qwen2ForCausalLM(DecoderForCausalLM):
    traits: ClassVar[DecoderTraits] = DecoderTraits(qkv_bias=True, o_bias=False)
