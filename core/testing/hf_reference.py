"""HF transformers as the reference: tiny random models, their greedy tokens and logits.

Weights are drawn with a large `initializer_range`, and HF's zero biases and unit norm weights
are replaced by random values, so a weight loaded into the wrong place changes the output and
greedy decoding does not collapse onto one repeated token. Everything runs in float32 on the
CPU with HF's eager attention, the most literal implementation.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

VOCAB_SIZE = 320
# Keys every decoder config in transformers understands; a suite adds its architecture's own.
TINY_CONFIG: Mapping[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "vocab_size": VOCAB_SIZE,
    "max_position_embeddings": 128,
    "initializer_range": 0.2,
    "bos_token_id": None,
    "eos_token_id": None,
    "pad_token_id": None,
}


def make_hf_model(model_class: Any, config: Any, *, seed: int = 0) -> Any:
    """A float32 HF model in eval mode with random weights, biases and norm weights."""
    torch.manual_seed(seed)
    model = model_class._from_config(config, attn_implementation="eager")
    model = model.to(torch.float32).eval()
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if name.endswith("bias"):
                parameter.copy_(0.2 * noise)
            elif "norm" in name:
                parameter.copy_(1.0 + 0.3 * noise)
    return model


def random_prompts(lengths: tuple[int, ...], vocab_size: int, *, seed: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    # Token 0 is left out: tiny tokenizers use it for special tokens.
    return [torch.randint(1, vocab_size, (n,), generator=generator).tolist() for n in lengths]


def hf_greedy(model: Any, prompt: list[int], max_new_tokens: int) -> list[int]:
    """HF `generate()` greedy continuation, exactly `max_new_tokens` long (EOS ignored)."""
    input_ids = torch.tensor([prompt])
    with torch.inference_mode():
        output = model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            min_new_tokens=max_new_tokens,
            eos_token_id=None,
            pad_token_id=0,
        )  # [1, prompt_len + max_new_tokens]
    tokens: list[int] = output[0, len(prompt) :].tolist()
    return tokens


def hf_prefill_logits(model: Any, prompt: list[int]) -> torch.Tensor:
    """float32 [prompt_len, vocab_size]: HF's logits at every prompt position."""
    with torch.inference_mode():
        logits: torch.Tensor = model(torch.tensor([prompt])).logits[0].float()
    return logits


def save_model_dir(model: Any, path: Path) -> Path:
    """An HF checkpoint directory the engine loads: config.json and model.safetensors."""
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    return path
