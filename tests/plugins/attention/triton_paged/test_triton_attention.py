"""The Triton paged-attention backend against the reference backend.

On the CPU the kernels run under the Triton interpreter (tests/conftest.py turns it on where no
GPU is used), in float32 and float16 only: the interpreter mishandles bfloat16. The `gpu` cases
(`python -m pytest -m gpu` on a GPU machine) run the same checks compiled, in every dtype, with
the kit's CUDA-graph check and a capture of an engine-like padded decode replayed over refilled
buffers. Speed: `tenon bench attention` (tenon.bench.attention_micro).
"""

from __future__ import annotations

import subprocess
import sys

import attrs
import pytest

from tenon.plugins.attention.triton_paged.backend import TritonPagedAttentionBackend
from tenon.plugins.attention.triton_paged.launch_config import (
    LOW_LATENCY_MAX_ROWS,
    decode_low_latency,
    decode_num_splits,
    decode_tiles,
    prefill_tiles,
)
from tenon.spec.attention import AttentionLayer
from tenon.testing import AttentionBackendConformance
from tenon.testing.paged_layouts import make_layer
from tests.plugins.attention.triton_paged.triton_cases import (
    DEVICE_DTYPES,
    GQA_SHAPES,
    HAS_GPU,
    SPEC,
    compare,
    on_interpreter,
    with_padding,
)


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


# --- Decode (max_query_len 1): split-KV -----------------------------------------------------


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES)
@pytest.mark.parametrize("heads", GQA_SHAPES, ids=lambda h: f"{h[0]}x{h[1]}")
@pytest.mark.parametrize("num_splits", [1, 5])
@pytest.mark.parametrize("low_latency", [False, True], ids=["pipelined", "low-latency"])
def test_decode_with_splits_matches_reference(
    device: str, dtype: str, heads: tuple[int, int], num_splits: int, low_latency: bool
) -> None:
    # Lengths off the block size, one past a tile of 64, one shorter than the splits, and one
    # long enough (700 keys, 128 a split) to use all five splits of the launch.
    num_heads, num_kv_heads = heads
    compare(
        make_layer(num_heads=num_heads, num_kv_heads=num_kv_heads, head_size=64),
        query_lens=[1, 1, 1, 1, 1],
        seq_lens=[1, 37, 203, 130, 700],
        device=device,
        dtype=dtype,
        num_splits=num_splits,
        low_latency=low_latency,  # low-latency: one split up to 512 keys, five for 700
        seed=20,
    )


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES)
@pytest.mark.parametrize("low_latency", [False, True], ids=["pipelined", "low-latency"])
def test_decode_sliding_window_and_padded_head_size(
    device: str, dtype: str, low_latency: bool
) -> None:
    # The window starts mid-tile; head size 80 pads to 128 inside the kernel.
    compare(
        make_layer(num_heads=8, num_kv_heads=2, head_size=80, sliding_window=24),
        query_lens=[1, 1, 1],
        seq_lens=[5, 90, 141],
        device=device,
        dtype=dtype,
        num_splits=4,
        low_latency=low_latency,
        seed=21,
    )


@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES)
@pytest.mark.parametrize("num_splits", [1, 3])
@pytest.mark.parametrize("low_latency", [False, True], ids=["pipelined", "low-latency"])
def test_decode_padding_requests_and_rows_are_zero(
    device: str, dtype: str, num_splits: int, low_latency: bool
) -> None:
    # Two real decodes, a request without a row this step, two padding requests, two stray rows.
    compare(
        make_layer(num_heads=8, num_kv_heads=2, head_size=64),
        query_lens=[1, 0, 1],
        seq_lens=[40, 7, 100],
        device=device,
        dtype=dtype,
        num_splits=num_splits,
        low_latency=low_latency,
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
    for low_latency in (False, True):  # three splits merged; one split
        compare(
            layer, query_lens=[1, 1], seq_lens=[20, 150], device=device, dtype=dtype,
            num_splits=3, low_latency=low_latency, seed=30,
        )  # fmt: skip


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


def test_low_latency_decode_is_for_a_few_rows() -> None:
    # decode-1 and batches up to LOW_LATENCY_MAX_ROWS take the latency-bound loop.
    assert [decode_low_latency(rows) for rows in (1, 4, 5, 64)] == [True, True, False, False]
    assert LOW_LATENCY_MAX_ROWS == 4


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
