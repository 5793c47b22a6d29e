"""Batching, chunked prefill, preemption and prefix caching must not change greedy output."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tenon import LLM, SamplingParams
from tests.helpers.tiny_model import VOCAB_SIZE

NEW_TOKENS = 24
GREEDY = SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS, ignore_eos=True)


def _prompts(count: int, seed: int) -> list[dict[str, list[int]]]:
    rng = random.Random(seed)
    return [
        {"prompt_token_ids": [rng.randrange(1, VOCAB_SIZE) for _ in range(rng.randrange(2, 60))]}
        for _ in range(count)
    ]


def _tokens(llm: LLM, prompts: list, params: SamplingParams = GREEDY) -> list[list[int]]:
    return [output.outputs[0].token_ids for output in llm.generate(prompts, params)]


def _assert_all_blocks_free(llm: LLM) -> None:
    pool = llm.engine.client.core.scheduler.kv_cache_manager.block_pool
    assert [block.block_id for block in pool.blocks if block.ref_count != 0] == []
    assert llm.engine.client.core.scheduler.kv_cache_manager.usage == 0.0


@pytest.fixture(scope="module")
def alone_outputs(tiny_llama_dir: Path) -> tuple[list, list[list[int]]]:
    prompts = _prompts(16, seed=7)
    llm = LLM(str(tiny_llama_dir), dtype="float32", log_startup=False, enable_prefix_caching=False)
    outputs = [_tokens(llm, [prompt])[0] for prompt in prompts]
    llm.shutdown()
    return prompts, outputs


@pytest.mark.parametrize(
    "engine_args",
    [
        pytest.param({}, id="batch-of-16"),
        pytest.param({"max_num_batched_tokens": 7, "max_model_len": 128}, id="chunked-prefill"),
        # vLLM's policy (no KV reservation): requests start, then the small cache preempts them.
        pytest.param({"num_gpu_blocks_override": 24, "block_size": 4, "schedule_conservativeness": 0.0},
                     id="preemption"),
        # KV reservation (the default) on the same cache: requests wait instead.
        pytest.param({"num_gpu_blocks_override": 24, "block_size": 4}, id="reservation"),
        pytest.param({"max_num_seqs": 3}, id="few-seqs"),
    ],
)
def test_batch_outputs_equal_alone(tiny_llama_dir: Path, alone_outputs: tuple, engine_args: dict) -> None:
    prompts, expected = alone_outputs
    llm = LLM(str(tiny_llama_dir), dtype="float32", log_startup=False, **engine_args)
    assert _tokens(llm, prompts) == expected
    if "num_gpu_blocks_override" in engine_args:
        preempted = llm.engine.client.core.scheduler.num_preemptions_total
        assert preempted > 0 if "schedule_conservativeness" in engine_args else preempted == 0
    _assert_all_blocks_free(llm)
    llm.shutdown()


def test_prefix_cache_hit_reports_cached_tokens_and_same_output(tiny_llama_dir: Path) -> None:
    rng = random.Random(3)
    block_size = 4
    shared = [rng.randrange(1, VOCAB_SIZE) for _ in range(4 * block_size + 2)]
    first = {"prompt_token_ids": shared + [5, 6, 7]}
    second = {"prompt_token_ids": shared + [9, 10]}
    cold = LLM(str(tiny_llama_dir), dtype="float32", log_startup=False, block_size=block_size, enable_prefix_caching=False)
    expected = _tokens(cold, [second])[0]
    cold.shutdown()

    llm = LLM(str(tiny_llama_dir), dtype="float32", log_startup=False, block_size=block_size)
    llm.generate(first, GREEDY)
    output = llm.generate(second, GREEDY)[0]
    assert output.num_cached_tokens >= 3 * block_size
    assert output.num_cached_tokens == 4 * block_size  # every full shared block
    assert output.outputs[0].token_ids == expected
    _assert_all_blocks_free(llm)
    # After reset_prefix_cache the same prompt computes everything again, with the same tokens.
    assert llm.reset_prefix_cache()
    again = llm.generate(second, GREEDY)[0]
    assert again.num_cached_tokens == 0
    assert again.outputs[0].token_ids == expected
    llm.shutdown()


def test_seeded_sampling_reproduces_alone_and_in_batch(tiny_llama_dir: Path) -> None:
    prompts = _prompts(6, seed=11)
    seeded = SamplingParams(temperature=1.0, top_p=0.9, top_k=50, seed=1234, max_tokens=16, ignore_eos=True)
    unseeded = SamplingParams(temperature=1.0, max_tokens=16, ignore_eos=True)
    llm = LLM(str(tiny_llama_dir), dtype="float32", log_startup=False)
    alone = _tokens(llm, [prompts[0]], seeded)[0]
    again = _tokens(llm, [prompts[0]], seeded)[0]
    mixed = llm.generate(prompts, [seeded if i == 3 else unseeded for i in range(6)])
    batched = mixed[3].outputs[0].token_ids
    # the same prompt, placed elsewhere in the batch
    in_batch = llm.generate([prompts[1], prompts[0], prompts[2]], [unseeded, seeded, unseeded])[1]
    assert alone == again == in_batch.outputs[0].token_ids
    assert batched == _tokens(llm, [prompts[3]], seeded)[0]
    llm.shutdown()
