"""Tiny random model directories (config.json + model.safetensors + tokenizer) for engine tests.

Weights are drawn with a large init range and random norm weights, so greedy decoding does not
collapse onto one token and a misplaced weight changes the output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import transformers

from tests.helpers.tiny_tokenizer import make_tiny_tokenizer

VOCAB_SIZE = 320

ARCHITECTURES: dict[str, tuple[Any, Any, dict[str, Any]]] = {
    "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM,
              {"num_key_value_heads": 2, "tie_word_embeddings": False}),
    "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM,
              {"num_key_value_heads": 2, "tie_word_embeddings": True}),
    "qwen3": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM,
              {"num_key_value_heads": 1, "head_dim": 32, "tie_word_embeddings": False}),
    "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM,
                {"num_key_value_heads": 2, "tie_word_embeddings": False, "sliding_window": None}),
}


def make_tiny_model_dir(path: Path, architecture: str = "llama", *, seed: int = 0,
                        with_tokenizer: bool = True, **overrides: Any) -> Path:
    config_class, model_class, extra = ARCHITECTURES[architecture]
    fields = dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        vocab_size=VOCAB_SIZE, max_position_embeddings=256, initializer_range=0.2,
        bos_token_id=0, eos_token_id=0, pad_token_id=None,
    )
    config = config_class(**{**fields, **extra, **overrides})
    torch.manual_seed(seed)
    model = model_class(config).to(torch.float32).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.uniform_(0.5, 1.5)
            elif name.endswith("bias"):
                parameter.normal_(0.0, 0.2)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    if with_tokenizer:
        make_tiny_tokenizer(path)
    return path


def load_hf_model(path: Path) -> Any:
    return transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def hf_greedy(model: Any, prompt_token_ids: list[int], max_new_tokens: int) -> list[int]:
    """HF transformers `generate()` greedy continuation (EOS ignored), the reference."""
    input_ids = torch.tensor([prompt_token_ids])
    with torch.no_grad():
        output = model.generate(
            input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False,
            max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, eos_token_id=None,
            pad_token_id=0,
        )
    return output[0, len(prompt_token_ids):].tolist()
