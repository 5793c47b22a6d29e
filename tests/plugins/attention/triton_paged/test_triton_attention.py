"""The Triton paged-attention backend against the reference backend.

On the CPU the kernels run under the Triton interpreter (tests/conftest.py turns it on where no
GPU is used), in float32 and float16 only: the interpreter mishandles bfloat16. The `gpu` cases
(`python -m pytest -m gpu` on a GPU machine) run the same checks compiled, in every dtype, with
the kit's CUDA-graph check and a capture of an engine-like padded decode replayed over refilled
buffers. Speed: `tenon bench attention` (tenon.bench.attention_micro).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
import torch

from tenon.plugins.attention import triton_registration as registration
from tenon.plugins.attention.reference import ReferenceAttentionBackend
from tenon.plugins.attention.triton_paged.backend import TritonPagedAttentionBackend
from tenon.plugins.attention.triton_paged.launch_config import (
    decode_num_splits,
    decode_tiles,
    prefill_tiles,
)
from tenon.spec.attention import AttentionLayer, AttentionMetadata
from tenon.testing import AttentionBackendConformance
from tenon.testing.paged_layouts import backend_config, make_case, make_layer, step_inputs
from tenon.testing.paged_runner import build_metadata

INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"
HAS_GPU = torch.cuda.is_available() and not INTERPRETING
SPEC = next(spec for spec in registration.tenon_attention_backends() if spec.name == "triton")
TOLERANCES = {"float32": (1e-5, 1e-5), "float16": (3e-3, 3e-3), "bfloat16": (3e-2, 3e-2)}

on_interpreter = pytest.mark.skipif(
    not INTERPRETING, reason="a GPU is visible: the kernels compile for it (run the gpu cases)"
)
on_gpu = [pytest.mark.gpu, pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")]
DEVICE_DTYPES = [
    pytest.param("cpu", "float32", marks=on_interpreter, id="cpu-float32"),
    pytest.param("cpu", "float16", marks=on_interpreter, id="cpu-float16"),
    pytest.param("cuda", "bfloat16", marks=on_gpu, id="cuda-bfloat16"),
    pytest.param("cuda", "float16", marks=on_gpu, id="cuda-float16"),
    pytest.param("cuda", "float32", marks=on_gpu, id="cuda-float32"),
]
GQA_SHAPES = [(4, 4), (4, 2), (8, 2)]  # (num_heads, num_kv_heads): ratios 1, 2, 4
NAN = float("nan")


@pytest.fixture(autouse=True, scope="module")
def interpreter_loops_over_tensor_bounds() -> Iterator[None]:
    """Backports a fix of Triton's interpreter (in 3.9, not in 3.6): it turned a scalar, a
    one-element array, into an int with `int(array)`, which NumPy 2.4 refuses, so a loop whose
    bounds come from the data failed. Compiled kernels never run this; it lets the CPU cases
    pass on the GPU machine's Triton 3.6 too (`-m "not gpu"` there)."""
    if not INTERPRETING:
        yield
        return
    from triton.runtime import interpreter

    original = interpreter._patch_lang_tensor

    def patch_lang_tensor(tensor: type, scope: Any) -> None:
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.squeeze()))

    interpreter._patch_lang_tensor = patch_lang_tensor
    yield
    interpreter._patch_lang_tensor = original


@on_interpreter
class TestTritonOnInterpreter(AttentionBackendConformance):
    backend_class = TritonPagedAttentionBackend
    spec = SPEC
    # The interpreter gets bfloat16 wrong and is slow: two dtypes, fewer sizes (80 pads to
    # 128 inside the kernel; a block of 128 holds several key tiles, one of 16 is a quarter).
    capabilities = attrs.evolve(
        SPEC.capabilities,
        device_types=("cpu",),
        dtypes=("float32", "float16"),
        head_sizes=(64, 80, 256),
        block_sizes=(16, 128),
    )
    device = "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")
class TestTritonOnCuda(AttentionBackendConformance):
    backend_class = TritonPagedAttentionBackend
    spec = SPEC
    device = "cuda"


class PoisonedBackend(TritonPagedAttentionBackend):
    """Hands out NaN-filled output and split scratch, so any element the kernels skip shows."""

    def _new_output(self, query: torch.Tensor) -> torch.Tensor:
        return torch.full(query.shape, NAN, dtype=query.dtype, device=query.device)

    def _reserve_scratch(self, layer: AttentionLayer, num_reqs: int, num_splits: int) -> None:
        super()._reserve_scratch(layer, num_reqs, num_splits)
        self._partials.fill_(NAN)
        self._lses.fill_(NAN)


def compare(
    layer: AttentionLayer,
    *,
    query_lens: list[int],
    seq_lens: list[int],
    device: str,
    dtype: str,
    block_size: int = 16,
    num_splits: int | None = None,
    causal: bool = True,
    seed: int = 0,
    pad: Callable[[AttentionMetadata], AttentionMetadata] | None = None,
    max_model_len: int = 256,
    backend: TritonPagedAttentionBackend | None = None,
) -> torch.Tensor:
    """One step through a poisoned Triton backend (or `backend`, reused across steps) and the
    reference on copies of one random cache: rows of requests match, every other row is zero,
    caches agree outside block 0. Returns the Triton output."""
    case = make_case(
        query_lens=query_lens, seq_lens=seq_lens, num_heads=layer.num_heads,
        num_kv_heads=layer.num_kv_heads, head_size=layer.head_size, block_size=block_size,
        num_layers=2, layer_index=1, seed=seed, dtype=getattr(torch, dtype), device=device,
    )  # fmt: skip
    query, key, value, metadata = step_inputs(case, block_size)
    metadata = attrs.evolve(metadata, causal=causal)
    num_actual_tokens = query.shape[0]
    if pad is not None:
        metadata = pad(metadata)
        extra = metadata.slot_mapping.shape[0] - num_actual_tokens
        generator = torch.Generator().manual_seed(seed + 1)
        query, key, value = (
            torch.cat([rows, torch.randn(extra, *rows.shape[1:], generator=generator).to(rows)])
            for rows in (query, key, value)
        )
    config = attrs.evolve(
        backend_config(block_size, 2, device=device, dtype=dtype), max_model_len=max_model_len
    )
    if backend is None:
        backend = PoisonedBackend(config, num_splits=num_splits)
    cache, reference_cache = case.kv_cache.clone(), case.kv_cache.clone()
    backend.prepare(metadata)
    output = backend.forward(layer, query, key, value, cache[:, 1], metadata)
    expected = ReferenceAttentionBackend(config).forward(
        layer, query, key, value, reference_cache[:, 1], metadata
    )
    assert output.shape == query.shape and output.dtype == query.dtype
    assert bool(output.isfinite().all()), "an output element was left unwritten (NaN poison)"
    atol, rtol = TOLERANCES[dtype]
    starts = metadata.query_start_loc.tolist()
    for request, seq_len in enumerate(metadata.seq_lens.tolist()):
        rows = slice(starts[request], starts[request + 1])
        if seq_len == 0:  # a padding request
            assert not output[rows].any(), f"padding request {request} must give zeros"
        else:
            torch.testing.assert_close(output[rows], expected[rows], atol=atol, rtol=rtol)
    assert not output[starts[-1] :].any(), "rows of no request must be zeros"
    assert torch.equal(cache[1:], reference_cache[1:]), "the K/V write differs from the reference"
    return output


def with_padding(num_padding_reqs: int, num_padding_rows: int) -> Callable[..., AttentionMetadata]:
    """Append padding requests as the engine pads a captured decode (seq_len 0, one row writing
    slot 0 of the null block, a null block table) and then rows that belong to no request."""

    def pad(metadata: AttentionMetadata) -> AttentionMetadata:
        device = metadata.seq_lens.device
        last = int(metadata.query_start_loc[-1])
        starts = torch.arange(last + 1, last + 1 + num_padding_reqs, dtype=torch.int32)
        slots = torch.arange(num_padding_reqs + num_padding_rows) % 4  # slots of the null block
        table = torch.zeros(num_padding_reqs, metadata.block_table.shape[1], dtype=torch.int32)
        return attrs.evolve(
            metadata,
            query_start_loc=torch.cat([metadata.query_start_loc, starts.to(device)]),
            seq_lens=torch.cat([metadata.seq_lens, torch.zeros_like(starts).to(device)]),
            block_table=torch.cat([metadata.block_table, table.to(device)]),
            slot_mapping=torch.cat([metadata.slot_mapping, slots.to(device)]),
            num_reqs=metadata.num_reqs + num_padding_reqs,
        )

    return pad


# --- Decode (max_query_len 1): split-KV -----------------------------------------------------


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES)
@pytest.mark.parametrize("heads", GQA_SHAPES, ids=lambda h: f"{h[0]}x{h[1]}")
@pytest.mark.parametrize("num_splits", [1, 5])
def test_decode_with_splits_matches_reference(
    device: str, dtype: str, heads: tuple[int, int], num_splits: int
) -> None:
    # Lengths off the block size, one past a tile of 64, and one shorter than the splits.
    num_heads, num_kv_heads = heads
    compare(
        make_layer(num_heads=num_heads, num_kv_heads=num_kv_heads, head_size=64),
        query_lens=[1, 1, 1, 1],
        seq_lens=[1, 37, 203, 130],
        device=device,
        dtype=dtype,
        num_splits=num_splits,
        seed=20,
    )


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES)
def test_decode_sliding_window_and_padded_head_size(device: str, dtype: str) -> None:
    # The window starts mid-tile; head size 80 pads to 128 inside the kernel.
    compare(
        make_layer(num_heads=8, num_kv_heads=2, head_size=80, sliding_window=24),
        query_lens=[1, 1, 1],
        seq_lens=[5, 90, 141],
        device=device,
        dtype=dtype,
        num_splits=4,
        seed=21,
    )


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES)
@pytest.mark.parametrize("num_splits", [1, 3])
def test_decode_padding_requests_and_rows_are_zero(
    device: str, dtype: str, num_splits: int
) -> None:
    # Two real decodes, a request without a row this step, two padding requests, two stray rows.
    compare(
        make_layer(num_heads=8, num_kv_heads=2, head_size=64),
        query_lens=[1, 0, 1],
        seq_lens=[40, 7, 100],
        device=device,
        dtype=dtype,
        num_splits=num_splits,
        pad=with_padding(num_padding_reqs=2, num_padding_rows=2),
        seed=22,
    )


# --- Prefill / mixed batches -------------------------------------------------------------------


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES)
@pytest.mark.parametrize("heads", GQA_SHAPES, ids=lambda h: f"{h[0]}x{h[1]}")
@pytest.mark.parametrize("sliding_window", [None, 20])
def test_chunks_on_cached_prefixes_match_reference(
    device: str, dtype: str, heads: tuple[int, int], sliding_window: int | None
) -> None:
    # A chunk on a cached prefix, a 70-token prefill spanning several query tiles, a decode
    # beside them, and a chunk whose prefix ends mid-block.
    num_heads, num_kv_heads = heads
    compare(
        make_layer(
            num_heads=num_heads,
            num_kv_heads=num_kv_heads,
            head_size=64,
            sliding_window=sliding_window,
        ),
        query_lens=[7, 70, 1, 33],
        seq_lens=[30, 70, 9, 100],
        device=device,
        dtype=dtype,
        seed=23,
    )


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES)
def test_prefill_padding_rows_are_zero_and_not_causal_sees_every_key(
    device: str, dtype: str
) -> None:
    layer = make_layer(num_heads=4, num_kv_heads=2, head_size=64)
    compare(
        layer,
        query_lens=[5, 1, 3, 40],
        seq_lens=[5, 9, 70, 40],
        device=device,
        dtype=dtype,
        pad=with_padding(num_padding_reqs=0, num_padding_rows=3),
        seed=24,
    )
    compare(
        layer, query_lens=[4, 2, 9], seq_lens=[4, 50, 9], device=device, dtype=dtype,
        causal=False, seed=25,
    )  # fmt: skip


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES)
def test_logits_soft_cap_in_prefill_and_split_decode(device: str, dtype: str) -> None:
    # Large logits (scale 1.5), so the cap binds: cap * tanh(logit / cap) on every score.
    layer = attrs.evolve(make_layer(num_heads=8, num_kv_heads=2, head_size=64), scale=1.5)
    layer = attrs.evolve(layer, logits_soft_cap=2.0)
    compare(layer, query_lens=[6, 1, 20], seq_lens=[6, 20, 90], device=device, dtype=dtype, seed=26)
    compare(
        layer, query_lens=[1, 1], seq_lens=[20, 150], device=device, dtype=dtype, num_splits=3,
        seed=30,
    )  # fmt: skip


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


# --- Launch choices and registration -----------------------------------------------------------


def test_split_count_follows_static_sizes_only() -> None:
    # Llama-3.1-8B on an H100 (132 SMs, 8 KV heads): batch 1 splits wide, batch 64 barely.
    splits = {
        num_reqs: decode_num_splits(
            num_reqs=num_reqs, num_kv_heads=8, max_model_len=131072, num_sms=132
        )
        for num_reqs in (1, 8, 64, 256)
    }
    assert splits == {1: 33, 8: 5, 64: 1, 256: 1}
    assert decode_num_splits(num_reqs=1, num_kv_heads=8, max_model_len=256, num_sms=132) == 2
    assert decode_num_splits(num_reqs=1, num_kv_heads=1, max_model_len=1 << 20, num_sms=132) == 64
    assert decode_num_splits(num_reqs=1, num_kv_heads=8, max_model_len=4096, num_sms=None) == 1


def test_tiles_fit_tensor_cores_and_pad_head_sizes() -> None:
    tiles = decode_tiles(head_size=80, group_size=4, element_bytes=2)
    assert (tiles.group_rows, tiles.head_rows, tiles.block_n) == (16, 128, 64)
    long_prefill = prefill_tiles(head_size=128, group_size=4, element_bytes=2, max_query_len=4096)
    assert (long_prefill.block_m, long_prefill.block_q, long_prefill.block_n) == (128, 32, 64)
    short_chunk = prefill_tiles(head_size=128, group_size=4, element_bytes=2, max_query_len=3)
    assert (short_chunk.block_m, short_chunk.block_q) == (16, 4)
    odd_group = prefill_tiles(head_size=64, group_size=6, element_bytes=2, max_query_len=4096)
    assert (odd_group.block_m, odd_group.block_q) == (128, 21)  # rows 126, 127 stay masked


def test_registered_for_gpus_only_and_discovery_stays_light() -> None:
    assert (SPEC.priority, SPEC.capabilities.device_types) == (20, ("cuda", "rocm"))
    assert SPEC.capabilities.supports_graphs and SPEC.capabilities.supports_sliding_window
    assert SPEC.capabilities.block_sizes == (16, 32, 64, 128)
    # Discovery imports only the registration module: neither triton nor the kernels.
    script = (
        "import sys; from tenon.plugins.attention import triton_registration as registration; "
        "registration.tenon_attention_backends(); "
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'triton' "
        "or 'triton_paged.' in name))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# --- On the GPU: model-sized shapes -------------------------------------------------------------


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES[2:])
def test_llama_sized_decode_and_chunk_match_reference(device: str, dtype: str) -> None:
    # Llama-3.1-8B attention (32 query heads, 8 KV heads, head size 128), split count chosen by
    # the backend from the SM count; then a 1000-token chunk on a 3000-token cached prefix.
    layer = AttentionLayer(
        layer_index=1, num_heads=32, num_kv_heads=8, head_size=128, scale=128**-0.5
    )
    compare(
        layer,
        query_lens=[1, 1, 1, 1],
        seq_lens=[4100, 1, 777, 2048],
        device=device,
        dtype=dtype,
        seed=28,
        max_model_len=8192,
    )
    compare(
        layer, query_lens=[1000, 1, 17], seq_lens=[4000, 300, 17], device=device, dtype=dtype,
        seed=29, max_model_len=8192,
    )  # fmt: skip
