"""The start-up warm-up of prefill kernels: which query lengths it runs, that it runs a forward
for each through the step's backend, and that it leaves nothing behind (the null block untouched,
the same greedy tokens afterwards)."""

from __future__ import annotations

from pathlib import Path

import torch

from tenon import LLM, SamplingParams
from tenon.worker.kernel_warm_up import warm_up_prefill, warm_up_query_lengths


def test_query_lengths_cover_every_tile_height_up_to_the_longest_step() -> None:
    assert warm_up_query_lengths(4096) == [2, 4, 8, 16, 32, 64, 128]
    assert warm_up_query_lengths(100) == [2, 4, 8, 16, 32, 64]
    assert warm_up_query_lengths(2) == [2]
    assert warm_up_query_lengths(1) == []


def test_warm_up_runs_each_length_and_leaves_no_trace(tiny_llama_dir: Path) -> None:
    llm = LLM(str(tiny_llama_dir), dtype="float32", max_model_len=128,
              num_gpu_blocks_override=40, block_size=4, log_startup=False)
    try:
        prompt = {"prompt_token_ids": [5, 17, 99, 3, 250, 41, 7]}
        params = SamplingParams(temperature=0.0, max_tokens=12, ignore_eos=True)
        before = llm.generate([prompt], params, use_tqdm=False)[0].outputs[0].token_ids
        runner = llm.engine.client.core.executor.runner
        null_block = [layer[0].clone() for layer in runner.kv_layers]
        prepared: list[int] = []
        backend = runner.attention_backend
        original_prepare = backend.prepare

        def prepare(metadata: object) -> None:
            prepared.append(metadata.max_query_len)  # type: ignore[attr-defined]
            original_prepare(metadata)

        backend.prepare = prepare  # type: ignore[method-assign]
        with torch.inference_mode():
            lengths = warm_up_prefill(
                model=runner.model, attention_backend=backend, kv_layers=runner.kv_layers,
                num_kv_blocks=40, block_size=4, vocab_size=int(llm.engine.hf_config.vocab_size),
                device=torch.device("cpu"), max_query_len=128,
            )
        # 128 tokens need 32 blocks of 4: they fit the 39 free blocks.
        assert lengths == prepared == [2, 4, 8, 16, 32, 64, 128]
        backend.prepare = original_prepare  # type: ignore[method-assign]
        for layer, saved in zip(runner.kv_layers, null_block, strict=True):
            assert torch.equal(layer[0], saved), "the warm-up wrote into the null block"
        llm.reset_prefix_cache()
        after = llm.generate([prompt], params, use_tqdm=False)[0].outputs[0].token_ids
        assert after == before
    finally:
        llm.shutdown()


def test_lengths_that_do_not_fit_the_cache_are_skipped(tiny_llama_dir: Path) -> None:
    llm = LLM(str(tiny_llama_dir), dtype="float32", max_model_len=64,
              num_gpu_blocks_override=6, block_size=4, log_startup=False)
    try:
        runner = llm.engine.client.core.executor.runner
        with torch.inference_mode():
            lengths = warm_up_prefill(
                model=runner.model, attention_backend=runner.attention_backend,
                kv_layers=runner.kv_layers, num_kv_blocks=6, block_size=4,
                vocab_size=int(llm.engine.hf_config.vocab_size), device=torch.device("cpu"),
                max_query_len=64,
            )
        assert lengths == [2, 4, 8, 16]  # 32 tokens would need 8 blocks of the 5 free
    finally:
        llm.shutdown()
