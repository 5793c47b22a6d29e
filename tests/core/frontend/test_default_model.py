"""The default model (SmolLM2-135M-Instruct, GGUF) against HF transformers on the same file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tenon import LLM, SamplingParams
from tenon.default_model import default_model_path

pytestmark = [pytest.mark.slow, pytest.mark.default_model]

CHAT_PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three primary colors.",
    "How many legs does a spider have?",
    "Explain photosynthesis in one sentence.",
]
NEW_TOKENS = 32


@pytest.fixture(scope="module")
def llm() -> LLM:
    engine = LLM(log_startup=False, dtype="float32")
    yield engine
    engine.shutdown()


def test_greedy_chat_matches_hf_transformers_on_the_gguf(llm: LLM) -> None:
    from transformers import AutoModelForCausalLM

    path: Path = default_model_path()
    hf = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    conversations = [[{"role": "user", "content": prompt}] for prompt in CHAT_PROMPTS]
    token_prompts = [llm.apply_chat_template(c) for c in conversations]
    params = SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS, ignore_eos=True)
    ours = [o.outputs[0].token_ids for o in llm.chat(conversations, params)]
    for prompt, got in zip(token_prompts, ours, strict=True):
        input_ids = torch.tensor([prompt])
        with torch.no_grad():
            expected = hf.generate(input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False,
                                   max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, eos_token_id=None,
                                   pad_token_id=0)[0, len(prompt):].tolist()
        assert got == expected


def test_default_model_names_paris(llm: LLM) -> None:
    answer = llm.chat([{"role": "user", "content": "What is the capital of France?"}],
                      SamplingParams(temperature=0.0, max_tokens=32))[0].outputs[0]
    assert "Paris" in answer.text
    assert answer.finish_reason == "stop"
