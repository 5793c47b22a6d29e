"""Tiny random HF models of each architecture, our port of each, and HF's greedy reference.

Weights are drawn with a large `initializer_range`, and HF's zero biases and unit norm weights
are replaced by random values, so a weight loaded into the wrong place changes the output and
greedy decoding does not collapse onto one repeated token.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import torch
import transformers

from tenon.plugins.models.llama import LlamaForCausalLM
from tenon.plugins.models.mistral import MistralForCausalLM
from tenon.plugins.models.qwen2 import Qwen2ForCausalLM
from tenon.plugins.models.qwen3 import Qwen3ForCausalLM
from tenon.plugins.quantization.none import NoQuantScheme
from tenon.spec.model import ModelBuildContext

VOCAB_SIZE = 320
MAX_NEW_TOKENS = 32
PROMPT_LENS = (1, 3, 5, 7, 9, 12, 15, 20)

_TINY = {
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


@attrs.frozen(kw_only=True)
class Case:
    hf_config_class: Any
    hf_model_class: Any
    ours: type[torch.nn.Module]
    config: dict[str, Any]
    sliding_windows: tuple[int | None, ...] = (None, None)  # per layer, as HF applies them


CASES: dict[str, Case] = {
    "llama-gqa-untied-llama3-rope": Case(
        hf_config_class=transformers.LlamaConfig,
        hf_model_class=transformers.LlamaForCausalLM,
        ours=LlamaForCausalLM,
        config={
            "num_key_value_heads": 2,
            "tie_word_embeddings": False,
            "rope_parameters": {
                "rope_type": "llama3",
                "rope_theta": 10000.0,
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                # Short, so positions in the test cross into the scaled frequencies.
                "original_max_position_embeddings": 32,
            },
        },
    ),
    "llama-tied-attention-bias": Case(
        hf_config_class=transformers.LlamaConfig,
        hf_model_class=transformers.LlamaForCausalLM,
        ours=LlamaForCausalLM,
        config={
            "num_key_value_heads": 4,
            "tie_word_embeddings": True,
            "attention_bias": True,
            "mlp_bias": True,
        },
    ),
    "mistral-sliding-window": Case(
        hf_config_class=transformers.MistralConfig,
        hf_model_class=transformers.MistralForCausalLM,
        ours=MistralForCausalLM,
        config={"num_key_value_heads": 1, "tie_word_embeddings": False, "sliding_window": 8},
        sliding_windows=(8, 8),
    ),
    "qwen2-bias-tied-sliding-layer": Case(
        hf_config_class=transformers.Qwen2Config,
        hf_model_class=transformers.Qwen2ForCausalLM,
        ours=Qwen2ForCausalLM,
        config={
            "num_key_value_heads": 2,
            "tie_word_embeddings": True,
            # Layer 0 full attention, layer 1 a window of 6 tokens.
            "use_sliding_window": True,
            "sliding_window": 6,
            "max_window_layers": 1,
        },
        sliding_windows=(None, 6),
    ),
    "qwen3-qk-norm-head-dim-32": Case(
        hf_config_class=transformers.Qwen3Config,
        hf_model_class=transformers.Qwen3ForCausalLM,
        ours=Qwen3ForCausalLM,
        config={"num_key_value_heads": 2, "head_dim": 32, "tie_word_embeddings": False},
    ),
}


@attrs.frozen(kw_only=True)
class Reference:
    """One case: the HF model, its config, and HF's outputs on the shared prompts."""

    case: Case
    hf_config: Any
    hf_model: Any
    prompts: list[list[int]]
    greedy_tokens: list[list[int]]  # per prompt, MAX_NEW_TOKENS ids from HF generate
    prefill_logits: list[torch.Tensor]  # per prompt, float32 [prompt_len, vocab_size]


def cpu_float32_build() -> ModelBuildContext:
    return ModelBuildContext(
        dtype=torch.float32,
        device=torch.device("cpu"),
        quant_scheme=NoQuantScheme.from_config(None),
    )


def make_hf_model(case: Case, seed: int = 0) -> tuple[Any, Any]:
    hf_config = case.hf_config_class(**_TINY, **case.config)
    torch.manual_seed(seed)
    hf_model = case.hf_model_class._from_config(hf_config, attn_implementation="eager")
    hf_model = hf_model.to(torch.float32).eval()
    with torch.no_grad():
        for name, param in hf_model.named_parameters():
            if name.endswith("bias"):
                param.normal_(0.0, 0.2)
            elif "norm" in name:
                param.copy_(1.0 + 0.3 * torch.randn_like(param))
    return hf_config, hf_model


def build_ours(reference: Reference) -> Any:
    model = reference.case.ours.from_config(reference.hf_config, cpu_float32_build())
    model.load_weights(reference.hf_model.state_dict().items())
    return model


def _hf_reference(case: Case) -> Reference:
    hf_config, hf_model = make_hf_model(case)
    generator = torch.Generator().manual_seed(1)
    prompts = [
        torch.randint(0, VOCAB_SIZE, (length,), generator=generator).tolist()
        for length in PROMPT_LENS
    ]
    greedy_tokens: list[list[int]] = []
    prefill_logits: list[torch.Tensor] = []
    with torch.inference_mode():
        for prompt in prompts:
            input_ids = torch.tensor([prompt])
            # output: [1, prompt_len + MAX_NEW_TOKENS]
            output = hf_model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                do_sample=False,
                max_new_tokens=MAX_NEW_TOKENS,
                min_new_tokens=MAX_NEW_TOKENS,
            )
            greedy_tokens.append(output[0, len(prompt) :].tolist())
            prefill_logits.append(hf_model(input_ids).logits[0].float())
    return Reference(
        case=case,
        hf_config=hf_config,
        hf_model=hf_model,
        prompts=prompts,
        greedy_tokens=greedy_tokens,
        prefill_logits=prefill_logits,
    )


@pytest.fixture(scope="module", params=sorted(CASES))
def reference(request: pytest.FixtureRequest) -> Reference:
    return _hf_reference(CASES[request.param])


@pytest.fixture
def ours(reference: Reference) -> Any:
    """Our port of the case's model, with the HF model's weights loaded."""
    return build_ours(reference)


@pytest.fixture
def build() -> ModelBuildContext:
    """Float32 on the CPU, unquantized."""
    return cpu_float32_build()
