"""The Triton paged-attention backend replayed over refilled buffers (as a captured decode graph
is), and its one-launch decode: KV write, split-KV attention and the merge of the last split.
On the CPU the same sequences run eagerly under the interpreter; the `gpu` cases capture and
replay real CUDA graphs."""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import pytest
import torch

from tenon.plugins.attention.reference import ReferenceAttentionBackend
from tenon.plugins.attention.triton_paged.backend import TritonPagedAttentionBackend
from tenon.spec.attention import AttentionMetadata
from tenon.testing.paged_layouts import backend_config, make_case, make_layer, step_inputs
from tenon.testing.paged_runner import build_metadata
from tests.plugins.attention.triton_paged.triton_cases import (
    DEVICE_DTYPES,
    NAN,
    TOLERANCES,
    PoisonedBackend,
    compare,
    with_padding,
)

# --- Graph safety --------------------------------------------------------------------------


def capture(run: Callable[[], torch.Tensor], device: str) -> Callable[[], torch.Tensor]:
    """On CUDA: warm `run` up (kernels compiled, scratch reserved) and capture it in a graph;
    returns the replay, which hands back the captured output. On the CPU: `run` itself."""
    if device != "cuda":
        run()
        return run
    side_stream = torch.cuda.Stream()
    side_stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side_stream):
        run()
    torch.cuda.current_stream().wait_stream(side_stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = run()

    def replay() -> torch.Tensor:
        graph.replay()
        torch.cuda.synchronize()
        return captured

    return replay


def check_replay_over_refilled_buffers(device: str, dtype: str, num_splits: int | None) -> None:
    """Run (on CUDA: capture) a decode of padding requests only, as the engine captures, then
    refill the same buffers with three real requests and one padding request and run (replay)
    again: the output must follow the new buffers, not the captured ones."""
    layer = make_layer(num_heads=8, num_kv_heads=2, head_size=64)
    block_size, graph_size, seq_lens = 16, 4, [37, 1, 200]
    torch_dtype = getattr(torch, dtype)
    case = make_case(
        query_lens=[1, 1, 1], seq_lens=seq_lens, num_heads=8, num_kv_heads=2, head_size=64,
        block_size=block_size, num_layers=1, layer_index=0, seed=27, dtype=torch_dtype,
        device=device,
    )  # fmt: skip
    config = backend_config(block_size, 1, device=device, dtype=dtype)
    max_blocks_per_req = math.ceil(config.max_model_len / block_size)
    static = AttentionMetadata(
        query_start_loc=torch.arange(graph_size + 1, dtype=torch.int32, device=device),
        seq_lens=torch.zeros(graph_size, dtype=torch.int32, device=device),
        block_table=torch.zeros(graph_size, max_blocks_per_req, dtype=torch.int32, device=device),
        slot_mapping=torch.zeros(graph_size, dtype=torch.int64, device=device),
        max_query_len=1,
        max_seq_len=0,
        num_reqs=graph_size,
        num_actual_tokens=0,
    )
    rows = [
        torch.zeros(graph_size, heads, 64, dtype=torch_dtype, device=device) for heads in (8, 2, 2)
    ]  # query, key, value
    backend = PoisonedBackend(config, num_splits=num_splits)
    cache, reference_cache = case.kv_cache.clone(), case.kv_cache.clone()

    def run() -> torch.Tensor:
        backend.prepare(static)
        return backend.forward(layer, *rows, cache[:, 0], static)

    replay = capture(run, device)
    real, _ = build_metadata([1, 1, 1], seq_lens, case.block_tables, block_size, device)
    static.seq_lens[:3] = real.seq_lens
    static.block_table[:3, : real.block_table.shape[1]] = real.block_table
    static.slot_mapping[:3] = real.slot_mapping
    query, key, value, _ = step_inputs(case, block_size)
    for buffer, source in zip(rows, (query, key, value), strict=True):
        buffer[:3] = source
        buffer[3] = torch.randn(buffer.shape[1:]).to(buffer)  # the padding row's junk
    output = replay()
    expected = ReferenceAttentionBackend(config).forward(
        layer, query, key, value, reference_cache[:, 0], real
    )
    atol, rtol = TOLERANCES[dtype]
    torch.testing.assert_close(output[:3], expected, atol=atol, rtol=rtol)
    assert not output[3].any(), "the padding request must give zeros"
    assert torch.equal(cache[1:], reference_cache[1:])


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES)
@pytest.mark.parametrize("num_splits", [None, 3])
def test_replay_over_refilled_buffers(device: str, dtype: str, num_splits: int | None) -> None:
    check_replay_over_refilled_buffers(device, dtype, num_splits)


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES[:1] + DEVICE_DTYPES[2:3])
def test_split_scratch_is_reserved_once_for_every_request_count(device: str, dtype: str) -> None:
    config = backend_config(16, 1, device=device, dtype=dtype)
    backend = TritonPagedAttentionBackend(config, num_splits=3)
    layer = make_layer(num_heads=8, num_kv_heads=2, head_size=64)
    addresses = []
    for num_reqs in (1, config.max_num_reqs):
        seq_lens = [20 + request for request in range(num_reqs)]
        case = make_case(
            query_lens=[1] * num_reqs, seq_lens=seq_lens, num_heads=8, num_kv_heads=2,
            head_size=64, block_size=16, num_layers=1, layer_index=0, seed=num_reqs,
            dtype=getattr(torch, dtype), device=device,
        )  # fmt: skip
        query, key, value, metadata = step_inputs(case, 16)
        backend.forward(layer, query, key, value, case.kv_cache[:, 0], metadata)
        addresses.append(
            (backend._partials.data_ptr(), backend._lses.data_ptr(), backend._arrivals.data_ptr())
        )
    assert addresses[0] == addresses[1]
    assert backend._lses.numel() == config.max_num_reqs * 3 * 8
    assert backend._arrivals.numel() == config.max_num_reqs * 2 and not backend._arrivals.any()


# --- One launch: KV write, split decode and the merge of the last split ------------------------


def check_decode_steps(
    device: str, dtype: str, num_splits: int | None, steps: list[list[int]]
) -> None:
    """Decode `steps` (each the seq_lens of its real requests, then padding requests up to 4) over
    one set of persistent buffers, as the engine replays a captured decode graph: on CUDA
    captured once and replayed for every step, on the CPU run again. Every step's rows, padding
    zeros and written cache must match the reference, and the split arrival counters must be
    back at zero."""
    layer = make_layer(num_heads=8, num_kv_heads=2, head_size=64)
    block_size, graph_size, torch_dtype = 16, 4, getattr(torch, dtype)
    num_real = max(len(seq_lens) for seq_lens in steps)
    assert num_real < graph_size, "every step keeps a padding request"
    longest = [max(s[r] for s in steps if r < len(s)) for r in range(num_real)]
    case = make_case(
        query_lens=[1] * num_real, seq_lens=longest, num_heads=8, num_kv_heads=2, head_size=64,
        block_size=block_size, num_layers=1, layer_index=0, seed=31, dtype=torch_dtype,
        device=device,
    )  # fmt: skip
    config = backend_config(block_size, 1, device=device, dtype=dtype)
    max_blocks_per_req = math.ceil(config.max_model_len / block_size)
    static = AttentionMetadata(
        query_start_loc=torch.arange(graph_size + 1, dtype=torch.int32, device=device),
        seq_lens=torch.zeros(graph_size, dtype=torch.int32, device=device),
        block_table=torch.zeros(graph_size, max_blocks_per_req, dtype=torch.int32, device=device),
        slot_mapping=torch.arange(graph_size, dtype=torch.int64, device=device),  # null block
        max_query_len=1,
        max_seq_len=config.max_model_len,
        num_reqs=graph_size,
        num_actual_tokens=graph_size,
    )
    rows = [
        torch.zeros(graph_size, heads, 64, dtype=torch_dtype, device=device) for heads in (8, 2, 2)
    ]  # query, key, value
    backend = PoisonedBackend(config, num_splits=num_splits)
    cache, reference_cache = case.kv_cache.clone(), case.kv_cache.clone()

    def run() -> torch.Tensor:
        backend.prepare(static)
        return backend.forward(layer, *rows, cache[:, 0], static)

    replay = capture(run, device)
    generator = torch.Generator().manual_seed(32)
    atol, rtol = TOLERANCES[dtype]
    for step, seq_lens in enumerate(steps):
        num_reqs = len(seq_lens)
        tables = [
            case.block_tables[request][: math.ceil(seq_len / block_size)]
            for request, seq_len in enumerate(seq_lens)
        ]
        real, _ = build_metadata([1] * num_reqs, seq_lens, tables, block_size, device)
        static.seq_lens.zero_()
        static.seq_lens[:num_reqs] = real.seq_lens
        static.block_table.zero_()
        static.block_table[:num_reqs, : real.block_table.shape[1]] = real.block_table
        static.slot_mapping.copy_(torch.arange(graph_size))
        static.slot_mapping[:num_reqs] = real.slot_mapping
        for buffer in rows:
            buffer.copy_(torch.randn(buffer.shape, generator=generator))
        output = replay()
        query, key, value = (buffer[:num_reqs].clone() for buffer in rows)
        expected = ReferenceAttentionBackend(config).forward(
            layer, query, key, value, reference_cache[:, 0], real
        )
        torch.testing.assert_close(
            output[:num_reqs], expected, atol=atol, rtol=rtol, msg=lambda m, i=step: f"{i}: {m}"
        )
        assert not output[num_reqs:].any(), f"step {step}: padding requests must give zeros"
        assert torch.equal(cache[1:], reference_cache[1:]), f"step {step}: K/V write differs"
        assert not backend._arrivals.any(), f"step {step}: an arrival counter was left set"


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES)
@pytest.mark.parametrize("num_splits", [None, 4])
def test_decode_steps_replayed_over_refilled_buffers(
    device: str, dtype: str, num_splits: int | None
) -> None:
    # Lengths grow, shrink and cross tiles; batches of 3, 1 and 2 real requests; one step where
    # a sequence is shorter than the splits.
    check_decode_steps(
        device, dtype, num_splits, steps=[[37, 1, 200], [90], [150, 2], [200, 65, 64], [5, 130]]
    )


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES)
def test_repeated_decodes_of_varying_batches_reuse_clean_counters(device: str, dtype: str) -> None:
    # One backend for every step: different request counts, a request without a row, padding.
    layer = make_layer(num_heads=8, num_kv_heads=2, head_size=64)
    config = backend_config(16, 2, device=device, dtype=dtype)
    backend = PoisonedBackend(config, num_splits=3)
    steps = [
        ([1, 1, 1], [90, 3, 150], with_padding(num_padding_reqs=0, num_padding_rows=0)),
        ([1], [64], with_padding(num_padding_reqs=2, num_padding_rows=1)),
        (
            [1, 0, 1, 1, 1],
            [200, 9, 65, 17, 33],
            with_padding(num_padding_reqs=1, num_padding_rows=0),
        ),
        ([1, 1], [1, 129], with_padding(num_padding_reqs=0, num_padding_rows=2)),
    ]
    for step, (query_lens, seq_lens, pad) in enumerate(steps):
        compare(
            layer, query_lens=query_lens, seq_lens=seq_lens, device=device, dtype=dtype,
            pad=pad, seed=40 + step, backend=backend,
        )  # fmt: skip
        assert not backend._arrivals.any(), f"step {step}: an arrival counter was left set"


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES)
@pytest.mark.parametrize("num_splits", [1, 3])
def test_decode_takes_the_newest_key_from_its_inputs(
    device: str, dtype: str, num_splits: int
) -> None:
    """The decode programs run in no fixed order, so none may read this step's K/V back from the
    cache (the program writing it may not have run yet): with the newest slots poisoned and the
    write sent to the null block instead, the output still matches the reference."""
    layer = make_layer(num_heads=8, num_kv_heads=2, head_size=64)
    case = make_case(
        query_lens=[1, 1, 1], seq_lens=[1, 40, 130], num_heads=8, num_kv_heads=2, head_size=64,
        block_size=16, num_layers=1, layer_index=0, seed=33, dtype=getattr(torch, dtype),
        device=device,
    )  # fmt: skip
    query, key, value, metadata = step_inputs(case, 16)
    config = backend_config(16, 1, device=device, dtype=dtype)
    expected = ReferenceAttentionBackend(config).forward(
        layer, query, key, value, case.kv_cache.clone()[:, 0], metadata
    )
    cache = case.kv_cache.clone()
    cache[metadata.slot_mapping // 16, 0, :, metadata.slot_mapping % 16] = NAN
    to_null_block = attrs.evolve(metadata, slot_mapping=torch.arange(3, device=device))
    backend = PoisonedBackend(config, num_splits=num_splits)
    output = backend.forward(layer, query, key, value, cache[:, 0], to_null_block)
    atol, rtol = TOLERANCES[dtype]
    torch.testing.assert_close(output, expected, atol=atol, rtol=rtol)
    assert torch.equal(cache[0, 0, 0, :3], key.to(cache.dtype)), "the write goes to slot_mapping"


