"""Engine start-up from a local config.json never imports transformers for built-in models.

transformers (with torchvision behind it) took 16.6 of 19.6 s of a warm start-up on the GPU
host. A fresh interpreter builds two engines, a tiny Llama checkpoint (safetensors, no
tokenizer files) and a config-only Qwen3 directory with `load_format="dummy"`, generates with
both, and reports which heavy packages it imported; the Llama's tokens must equal HF's greedy
tokens, so the transformers-free config builds the same model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import transformers

from tenon.testing.hf_reference import (
    TINY_CONFIG,
    hf_greedy,
    make_hf_model,
    random_prompts,
    save_model_dir,
)

NUM_NEW_TOKENS = 8
HEAVY_PACKAGES = ("transformers", "torchvision", "huggingface_hub")

CHILD_SCRIPT = """
import json, sys
from tenon import LLM, SamplingParams

llama_dir, qwen3_dir, prompt = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
params = SamplingParams(temperature=0.0, max_tokens=int(sys.argv[4]), ignore_eos=True)
tokens = {}
for name, path, load_format in (("llama", llama_dir, "auto"), ("qwen3", qwen3_dir, "dummy")):
    llm = LLM(path, load_format=load_format, dtype="float32", device="cpu", max_model_len=64,
              log_startup=False)
    assert llm.tokenizer is None
    [output] = llm.generate([{"prompt_token_ids": prompt}], params)
    tokens[name] = list(output.outputs[0].token_ids)
    llm.shutdown()
print(json.dumps({"tokens": tokens,
                  "imported": sorted(p for p in json.loads(sys.argv[5]) if p in sys.modules)}))
"""


def test_engine_start_up_leaves_transformers_unimported(tmp_path: Path) -> None:
    llama_config = transformers.LlamaConfig(
        **TINY_CONFIG, num_key_value_heads=2, architectures=["LlamaForCausalLM"],
        rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8},
    )
    hf_model = make_hf_model(transformers.LlamaForCausalLM, llama_config)
    llama_dir = save_model_dir(hf_model, tmp_path / "llama")
    qwen3_dir = tmp_path / "qwen3"
    transformers.Qwen3Config(
        **TINY_CONFIG, num_key_value_heads=2, head_dim=16, architectures=["Qwen3ForCausalLM"]
    ).save_pretrained(qwen3_dir)
    [prompt] = random_prompts((12,), int(llama_config.vocab_size), seed=3)

    completed = subprocess.run(
        [sys.executable, "-c", CHILD_SCRIPT, str(llama_dir), str(qwen3_dir), json.dumps(prompt),
         str(NUM_NEW_TOKENS), json.dumps(HEAVY_PACKAGES)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])

    assert report["imported"] == []
    assert report["tokens"]["llama"] == hf_greedy(hf_model, prompt, NUM_NEW_TOKENS)
    assert len(report["tokens"]["qwen3"]) == NUM_NEW_TOKENS
    assert len(set(report["tokens"]["llama"])) > 1  # not collapsed onto one token
