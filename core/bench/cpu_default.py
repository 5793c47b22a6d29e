"""The cpu-default workload: SmolLM2-135M on the CPU, one stream and 16 concurrent requests
(100 tokens in, 128 out), against HF transformers `generate()` and llama.cpp on the same GGUF,
all in one run."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from tenon.bench.report import copy_bandwidth_bytes_per_s, result_record

INPUT_LEN = 100
OUTPUT_LEN = 128
CONCURRENCY = 16


def _prompts(count: int, vocab_size: int) -> list[list[int]]:
    rng = random.Random(0)
    return [[rng.randrange(vocab_size) for _ in range(INPUT_LEN)] for _ in range(count)]


REPEATS = 3  # this machine is shared and noisy: each figure is the median of three runs


def _timed(run: Callable[[], int]) -> float:
    """Median output tokens per second over REPEATS calls of `run` (returns tokens made)."""
    rates = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        num_tokens = run()
        rates.append(num_tokens / (time.perf_counter() - start))
    return statistics.median(rates)


def tenon_rates(engine_args: dict[str, Any]) -> tuple[dict[int, float], Any]:
    from tenon import LLM, SamplingParams

    llm = LLM(log_startup=False, **engine_args)
    vocab_size = int(llm.engine.hf_config.vocab_size)
    params = SamplingParams(temperature=0.0, max_tokens=OUTPUT_LEN, ignore_eos=True)
    llm.generate({"prompt_token_ids": _prompts(1, vocab_size)[0]}, params.clone(max_tokens=8))
    rates = {}
    for count in (1, CONCURRENCY):
        prompts = [{"prompt_token_ids": p} for p in _prompts(count, vocab_size)]
        rates[count] = _timed(lambda prompts=prompts: sum(
            len(o.outputs[0].token_ids) for o in llm.generate(prompts, params)))
    model = llm.engine.client.core.executor.runner.model
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    dtype = llm.engine.config.model.dtype
    llm.shutdown()
    return rates, (weight_bytes, dtype)


def hf_rates(gguf_path: Any) -> dict[int, float]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32).eval()
    rates = {}
    for count in (1, CONCURRENCY):
        input_ids = torch.tensor(_prompts(count, model.config.vocab_size))

        def run(input_ids: torch.Tensor = input_ids) -> int:
            with torch.no_grad():
                out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False,
                                     max_new_tokens=OUTPUT_LEN, min_new_tokens=OUTPUT_LEN, pad_token_id=0)
            return (out.shape[1] - INPUT_LEN) * out.shape[0]

        run(input_ids[:, :8])  # warm-up
        rates[count] = _timed(run)
    return rates


def llama_cpp_rates(gguf_path: Any) -> dict[int, float] | None:
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    llm = Llama(model_path=str(gguf_path), n_ctx=512, n_threads=torch.get_num_threads(), verbose=False)
    vocab_size = llm.n_vocab()

    def one(prompt: list[int]) -> int:
        llm.reset()
        for index, _token in enumerate(llm.generate(prompt, top_k=1, temp=0.0)):
            if index + 1 == OUTPUT_LEN:
                return OUTPUT_LEN
        return OUTPUT_LEN

    one(_prompts(1, vocab_size)[0])  # warm-up
    # llama-cpp-python serves one sequence at a time: 16 requests run one after another.
    return {count: _timed(lambda count=count: sum(one(p) for p in _prompts(count, vocab_size)))
            for count in (1, CONCURRENCY)}


def run_cpu_default(engine_args: dict[str, Any]) -> list[dict[str, Any]]:
    from tenon.default_model import DEFAULT_MODEL_NAME, default_model_path

    gguf_path = default_model_path()
    ours, (weight_bytes, dtype) = tenon_rates(engine_args)
    hf = hf_rates(gguf_path)
    llama_cpp = llama_cpp_rates(gguf_path)
    bandwidth = copy_bandwidth_bytes_per_s(torch.device("cpu"), size_bytes=1 << 30)
    records = []
    for count in (1, CONCURRENCY):
        limit = None
        if count == 1:
            limit = {"value": round(bandwidth / weight_bytes, 2),
                     "how": f"CPU copy bandwidth {bandwidth / 1e9:.1f} GB/s (read+write) over "
                            f"{weight_bytes / 1e6:.0f} MB of {dtype} weights read per token"}
        records.append(result_record(
            workload="cpu-default", model=DEFAULT_MODEL_NAME, value=ours[count], unit="output tokens/s",
            baseline={"name": "hf-transformers-generate-fp32", "value": round(hf[count], 2),
                      "ratio": round(ours[count] / hf[count], 2)},
            limit=limit,
            extra={"concurrency": count, "repeats": REPEATS, "statistic": "median", "input_len": INPUT_LEN, "output_len": OUTPUT_LEN,
                   "tenon_dtype": dtype, "threads": torch.get_num_threads(),
                   "llama_cpp": None if llama_cpp is None else {
                       "name": "llama-cpp-python Q4_1 (sequential)", "value": round(llama_cpp[count], 2),
                       "ratio": round(ours[count] / llama_cpp[count], 2)}},
        ))
    return records
