"""Asynchronous scheduling (step N+1 scheduled before step N's tokens are on the host) must give
exactly the outputs of synchronous scheduling, for every sampling feature, and free every block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tenon import LLM, SamplingParams
from tests.helpers.sampling_mix import assert_logprobs_close, mixed_params, random_prompts


def _run(model_dir: Path, prompts: list, params: list, **engine_args: Any) -> tuple[list, LLM]:
    llm = LLM(str(model_dir), dtype="float32", log_startup=False, **engine_args)
    outputs = llm.generate(prompts, params)
    summary = [
        (
            output.outputs[0].token_ids,
            output.outputs[0].finish_reason,
            output.outputs[0].logprobs,
        )
        for output in outputs
    ]
    return summary, llm


def _assert_all_blocks_free(llm: LLM) -> None:
    manager = llm.engine.client.core.scheduler.kv_cache_manager
    assert [block.block_id for block in manager.block_pool.blocks if block.ref_count != 0] == []
    assert manager.usage == 0.0


@pytest.fixture(scope="module")
def workload() -> tuple[list, list]:
    prompts = random_prompts(24, seed=3)
    return prompts, mixed_params(len(prompts))


@pytest.fixture(scope="module")
def sync_outputs(tiny_llama_dir: Path, workload: tuple) -> list:
    prompts, params = workload
    summary, llm = _run(tiny_llama_dir, prompts, params, async_scheduling=False)
    assert not llm.engine.client.core.scheduler.async_scheduling
    llm.shutdown()
    return summary


@pytest.mark.parametrize(
    "engine_args",
    [
        pytest.param({}, id="batch"),
        pytest.param({"max_num_batched_tokens": 7, "max_model_len": 128}, id="chunked-prefill"),
        # vLLM's policy (no KV reservation): requests start, then the small cache preempts them.
        pytest.param({"num_gpu_blocks_override": 24, "block_size": 4, "schedule_conservativeness": 0.0},
                     id="preemption"),
        # KV reservation (the default) on the same cache: requests wait instead.
        pytest.param({"num_gpu_blocks_override": 24, "block_size": 4}, id="reservation"),
        pytest.param({"max_num_seqs": 3}, id="few-seqs"),
        pytest.param({"enable_prefix_caching": False}, id="no-prefix-caching"),
    ],
)
def test_async_outputs_equal_sync(tiny_llama_dir: Path, workload: tuple, sync_outputs: list,
                                  engine_args: dict) -> None:
    prompts, params = workload
    summary, llm = _run(tiny_llama_dir, prompts, params, async_scheduling=True, **engine_args)
    core = llm.engine.client.core
    assert core.scheduler.async_scheduling
    for index, (got, expected) in enumerate(zip(summary, sync_outputs, strict=True)):
        assert got[0] == expected[0], f"prompt {index} ({params[index]}): tokens differ"
        assert got[1] == expected[1], f"prompt {index}: finish reason differs"
        assert_logprobs_close(got[2], expected[2], index)
    if "num_gpu_blocks_override" in engine_args:
        preempted = core.scheduler.num_preemptions_total
        assert preempted > 0 if "schedule_conservativeness" in engine_args else preempted == 0
    assert core.step() == [] and core.step() == []  # drain: the last step's dropped tokens
    assert core._in_flight is None and not core.has_work()
    assert all(request.num_output_placeholders == 0 for request in core.scheduler.requests.values())
    _assert_all_blocks_free(llm)
    llm.shutdown()


def test_async_steps_overlap_and_read_tokens_on_the_device(tiny_llama_dir: Path) -> None:
    """Decode steps are launched before the previous step's tokens are processed, and take
    those tokens from the device."""
    llm = LLM(str(tiny_llama_dir), dtype="float32", log_startup=False, async_scheduling=True)
    core = llm.engine.client.core
    runner = core.executor.runner
    fills: list[bool] = []
    original_fill = runner.buffers.fill

    def fill(*args: Any, **kwargs: Any) -> Any:
        fills.append(kwargs.get("pending") is not None)
        return original_fill(*args, **kwargs)

    runner.buffers.fill = fill
    prompt = {"prompt_token_ids": [5, 9, 11, 13]}
    greedy = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True)
    tokens = llm.generate([prompt], greedy)[0].outputs[0].token_ids
    runner.buffers.fill = original_fill
    # step 1 prefills; steps 2..8 each take the previous token from the device; no ninth step:
    # the scheduler knows the 8th token is the last (max_tokens) before it is seen
    assert fills == [False] + [True] * 7
    llm.shutdown()
    sync = LLM(str(tiny_llama_dir), dtype="float32", log_startup=False, async_scheduling=False)
    assert sync.generate([prompt], greedy)[0].outputs[0].token_ids == tokens
    sync.shutdown()


def test_async_abort_mid_flight_frees_blocks(tiny_llama_dir: Path) -> None:
    llm = LLM(str(tiny_llama_dir), dtype="float32", log_startup=False, async_scheduling=True)
    client = llm.engine.client
    from tenon.engine.request import Request

    params = SamplingParams(temperature=0.0, max_tokens=50, ignore_eos=True)
    for index in range(3):
        client.add_request(Request(f"r{index}", [4, 5, 6, 7 + index], params))
    for _ in range(4):
        client.get_outputs()
    assert client.core._in_flight is not None  # a step is on the device while we abort
    client.abort_requests(["r1"])
    seen: dict[str, list[int]] = {"r0": [], "r2": []}
    while client.has_unfinished_requests() or client.core.has_work():
        for output in client.get_outputs():
            assert output.request_id != "r1"
            seen[output.request_id].extend(output.new_token_ids)
    assert all(len(tokens) > 0 for tokens in seen.values())
    _assert_all_blocks_free(llm)
    llm.shutdown()


def test_async_scheduling_with_kv_connector_is_refused(tmp_path: Path, tiny_llama_dir: Path) -> None:
    with pytest.raises(ValueError, match="--async-scheduling does not work with a KV connector"):
        LLM(str(tiny_llama_dir), dtype="float32", log_startup=False, async_scheduling=True,
            kv_offloading_size=0.01)
