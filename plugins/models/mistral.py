"""MistralForCausalLM: Llama with a sliding window on every layer (`config.sliding_window`)."""

from __future__ import annotations

from typing import ClassVar

from tenon.plugins.models.causal_lm import DecoderForCausalLM
from tenon.plugins.models.decoder import DecoderTraits


class MistralForCausalLM(DecoderForCausalLM):
    traits: ClassVar[DecoderTraits] = DecoderTraits()
