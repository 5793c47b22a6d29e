"""Decode-graph plumbing on the CPU: capture sizes, padded inputs, and a runner that replays
padded steps (an eager stand-in for the graph) producing the same tokens as unpadded steps."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from tenon import LLM, SamplingParams
from tenon.engine_args import EngineArgs
from tenon.spec.attention import ForwardContext
from tenon.startup.engine_builder import fit_max_model_len
from tenon.worker.decode_graphs import default_capture_sizes, resolve_capture_sizes
from tenon.worker.input_buffers import InputBuffers, StepInputs
from tenon.worker.request_state import RequestState
from tests.helpers.tiny_model import VOCAB_SIZE


def test_default_capture_sizes() -> None:
    assert default_capture_sizes(256) == (1, 2, 4, 8, *range(16, 257, 16))
    assert default_capture_sizes(1024) == (1, 2, 4, 8, *range(16, 1025, 16))
    assert default_capture_sizes(4096)[-1] == 1024
    assert default_capture_sizes(300) == (1, 2, 4, 8, *range(16, 289, 16), 300)
    assert default_capture_sizes(3) == (1, 2, 3)
    assert default_capture_sizes(40) == (1, 2, 4, 8, 16, 32, 40)


def test_requested_capture_sizes_are_sorted_and_capped() -> None:
    assert resolve_capture_sizes([8, 1, 4, 512], max_num_seqs=64) == (1, 4, 8)
    assert resolve_capture_sizes([], max_num_seqs=64) == ()


def test_cuda_graph_sizes_flag() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    EngineArgs.add_cli_args(parser)
    args = EngineArgs.from_cli_args(parser.parse_args(["--cuda-graph-sizes", "1", "2", "8"]))
    assert args.cuda_graph_sizes == [1, 2, 8]
    with pytest.raises(ValueError, match="--cuda-graph-sizes"):
        EngineArgs(cuda_graph_sizes=[0])


def test_fit_max_model_len() -> None:
    assert fit_max_model_len(4096, 10_000, given=False, block_size=16) == 4096
    assert fit_max_model_len(131072, 10_007, given=False, block_size=16) == 10_000
    with pytest.raises(ValueError, match="lower --max-model-len"):
        fit_max_model_len(131072, 10_000, given=True, block_size=16)


def _state(request_id: str, num_tokens: int, block_ids: list[int]) -> RequestState:
    return RequestState(
        request_id=request_id, prompt_token_ids=list(range(1, num_tokens + 1)), output_token_ids=[],
        sampling_params=SamplingParams(), block_ids=block_ids, num_computed_tokens=num_tokens - 1,
    )


def test_padded_fill_adds_null_requests() -> None:
    buffers = InputBuffers(max_num_reqs=8, max_num_tokens=16, max_blocks_per_req=4, block_size=4,
                           device=torch.device("cpu"), pin_memory=False)
    # Poison every host buffer so unwritten padding shows (not the block table, which is kept
    # up to date row by row from its known contents: see the next test).
    for name, array in buffers._np.items():
        if name != "block_table":
            array[...] = 77
    states = [_state("a", 6, [3, 5]), _state("b", 3, [2])]
    inputs = buffers.fill(states, [1, 1], pad_to_reqs=4)
    metadata = inputs.metadata
    assert metadata.num_reqs == 4 and metadata.num_actual_tokens == 2
    assert metadata.max_query_len == 1
    assert metadata.query_start_loc.tolist() == [0, 1, 2, 3, 4]
    assert metadata.seq_lens.tolist() == [6, 3, 0, 0]
    assert metadata.slot_mapping.tolist() == [5 * 4 + 1, 2 * 4 + 2, 0, 0]
    assert metadata.block_table.tolist() == [[3, 5, 0, 0], [2, 0, 0, 0], [0] * 4, [0] * 4]
    assert inputs.input_ids.tolist() == [6, 3, 0, 0]
    assert inputs.positions.tolist() == [5, 2, 0, 0]
    assert inputs.logits_indices.tolist() == [0, 1]
    assert np.all(buffers._np["input_ids"][4:] == 77)  # nothing past the padded size is touched


def test_block_table_rows_are_rewritten_only_where_they_change() -> None:
    buffers = InputBuffers(max_num_reqs=3, max_num_tokens=16, max_blocks_per_req=4, block_size=4,
                           device=torch.device("cpu"), pin_memory=False)
    a, b = _state("a", 6, [3, 5]), _state("b", 3, [2])
    assert buffers.fill([a, b], [1, 1]).metadata.block_table.tolist() == [[3, 5, 0, 0], [2, 0, 0, 0]]
    a.block_ids.append(7)  # a gained a block; b left; a new request takes row 1
    c = _state("c", 2, [9])
    assert buffers.fill([a, c], [1, 1]).metadata.block_table.tolist() == [[3, 5, 7, 0], [9, 0, 0, 0]]
    # Rows swap owners, and a resumed request (a new state object) is rewritten in full.
    resumed_a = _state("a", 6, [4, 6])
    table = buffers.fill([c, resumed_a], [1, 1], pad_to_reqs=3).metadata.block_table.tolist()
    assert table == [[9, 0, 0, 0], [4, 6, 0, 0], [0, 0, 0, 0]]
    assert buffers._np["block_table"].tolist() == table  # nothing stale left anywhere


class EagerGraphs:
    """Stands in for DecodeGraphs on the CPU: 'replays' by running the forward on the padded
    buffers, which is exactly what a captured graph computes."""

    def __init__(self, runner, sizes: tuple[int, ...]) -> None:  # type: ignore[no-untyped-def]
        self.runner = runner
        self.sizes = sizes
        self.padded: list[tuple[int, int]] = []

    def padded_size(self, num_reqs: int) -> int | None:
        return next((size for size in self.sizes if size >= num_reqs), None)

    def replay(self, inputs: StepInputs, size: int) -> torch.Tensor:
        assert inputs.metadata.num_reqs == size and inputs.input_ids.shape[0] == size
        self.padded.append((inputs.metadata.num_actual_tokens, size))
        runner = self.runner
        context = ForwardContext(attention_metadata=inputs.metadata,
                                 attention_backend=runner.attention_backend, kv_layers=runner.kv_layers)
        return runner.model.forward(inputs.input_ids, inputs.positions, context)  # type: ignore[no-any-return]


@pytest.mark.parametrize("backend", ["reference", "torch-sdpa"])
def test_padded_decode_steps_give_the_same_tokens(tiny_llama_dir: Path, backend: str) -> None:
    rng = random.Random(3)
    prompts = [{"prompt_token_ids": [rng.randrange(1, VOCAB_SIZE) for _ in range(rng.randrange(2, 30))]}
               for _ in range(5)]
    params = SamplingParams(temperature=0.0, max_tokens=12, ignore_eos=True)
    llm = LLM(str(tiny_llama_dir), dtype="float32", attention_backend=backend, log_startup=False)
    expected = [o.outputs[0].token_ids for o in llm.generate(prompts, params)]
    runner = llm.engine.client.core.executor.runner
    runner.graphs = EagerGraphs(runner, sizes=(1, 2, 8))
    got = [o.outputs[0].token_ids for o in llm.generate(prompts, params)]
    assert got == expected
    assert (5, 8) in runner.graphs.padded  # five decodes padded to eight
    llm.shutdown()


def test_max_model_len_is_fitted_to_a_small_cache(tiny_llama_dir: Path) -> None:
    llm = LLM(str(tiny_llama_dir), dtype="float32", log_startup=False)
    block_bytes = llm.engine.client.core.executor.kv_cache[0].nbytes
    assert llm.engine.config.model.max_model_len == 256  # the model's own
    llm.shutdown()
    llm = LLM(str(tiny_llama_dir), dtype="float32", log_startup=False,
              kv_cache_memory_bytes=10 * block_bytes)
    assert llm.engine.config.cache.num_blocks == 10
    assert llm.engine.config.model.max_model_len == 9 * 16
    assert any("max model len fitted" in note for note in llm.engine.startup.notes)
    llm.shutdown()
    with pytest.raises(ValueError, match="does not fit the KV cache"):
        LLM(str(tiny_llama_dir), dtype="float32", log_startup=False, max_model_len=256,
            kv_cache_memory_bytes=10 * block_bytes)


def test_slower_sizes_give_way_to_a_larger_faster_one() -> None:
    from tenon.worker.decode_graphs import keep_fastest_sizes

    # The H200 sweep's shape (ms per step of matmuls): 448 rows is slower than 464 and 512.
    replay_ms = {432: 9.73, 448: 13.90, 464: 10.37, 480: 11.43, 496: 10.85, 512: 10.41}
    assert keep_fastest_sizes(replay_ms) == (432, 464, 512)
    # Times within the 3% margin of a larger size are noise: every size stays, the smallest
    # included (batch 1's graph holds the one-token kernels decode-1 runs).
    flat = {1: 4.10, 2: 4.05, 4: 4.08, 8: 4.02, 16: 4.12}
    assert keep_fastest_sizes(flat) == (1, 2, 4, 8, 16)
    assert keep_fastest_sizes({1: 5.0, 2: 4.0}) == (2,)  # 20% faster: padding one row pays
    assert keep_fastest_sizes({7: 1.0}) == (7,)
    # A size is compared with the fastest larger size kept, not only its neighbour.
    assert keep_fastest_sizes({16: 3.0, 32: 3.5, 48: 2.0}) == (48,)
