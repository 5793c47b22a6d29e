"""The quantization suite's engine check: the engine with a scheme gives the paged runner's
tokens with the same scheme, on a tiny Llama checkpoint stored in float32."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from tenon.layers.linear import process_weights_after_loading
from tenon.spec.model import ModelBuildContext
from tenon.spec.quantization import QuantScheme
from tenon.testing.engine_checks import greedy_tokens
from tenon.testing.hf_reference import TINY_CONFIG, make_hf_model, random_prompts, save_model_dir
from tenon.testing.paged_runner import greedy_generate

MAX_NEW_TOKENS = 6


def check_engine_matches_paged_runner(
    scheme_class: type[QuantScheme], method: str, scheme_name: str
) -> None:
    import transformers

    from tenon import LLM
    from tenon.plugins.models.llama import LlamaForCausalLM

    config = transformers.LlamaConfig(**TINY_CONFIG, num_key_value_heads=2)
    hf_model = make_hf_model(transformers.LlamaForCausalLM, config)
    prompts = random_prompts((4, 9), int(config.vocab_size), seed=3)
    # The checkpoint has no quantization_config, so the engine builds the scheme from None too.
    build = ModelBuildContext(
        dtype=torch.float32, device=torch.device("cpu"), quant_scheme=scheme_class.from_config(None)
    )
    model = LlamaForCausalLM.from_config(config, build)
    model.load_weights(hf_model.state_dict().items())
    process_weights_after_loading(model)
    expected = greedy_generate(model.eval(), prompts, MAX_NEW_TOKENS)
    with tempfile.TemporaryDirectory(prefix="tenon-quant-") as directory:
        save_model_dir(hf_model, Path(directory))
        llm = LLM(directory, dtype="float32", quantization=method, log_startup=False)
        try:
            chosen = llm.engine.startup.slots.get("quant scheme")
            assert chosen == scheme_name, f"the engine chose quant scheme {chosen!r}"
            assert greedy_tokens(llm, prompts, MAX_NEW_TOKENS) == expected, (
                "the engine's tokens with the scheme differ from the paged runner's with the "
                "same scheme on the same checkpoint"
            )
        finally:
            llm.shutdown()
