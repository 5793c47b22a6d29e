"""The reference backend against dense (unpaged) attention on random paged layouts."""

from __future__ import annotations

import attrs
import pytest
import torch

from tenon.plugins.attention.reference import ReferenceAttentionBackend
from tenon.spec.attention import AttentionLayer
from tenon.testing.paged_layouts import (
    PagedCase,
    backend_config,
    dense_attention,
    make_case,
    make_layer,
    step_inputs,
)
from tenon.testing.paged_runner import build_metadata

TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}


def expected_cache_after_step(
    case: PagedCase, before: torch.Tensor, layer_index: int, block_size: int
) -> torch.Tensor:
    """`before` with exactly this step's new K/V rows written (per token, plain indexing)."""
    expected = before.clone()
    for r, (query_len, seq_len) in enumerate(zip(case.query_lens, case.seq_lens, strict=True)):
        for position in range(seq_len - query_len, seq_len):
            block = case.block_tables[r][position // block_size]
            offset = position % block_size
            expected[block, layer_index, 0, offset] = case.keys[r][position]
            expected[block, layer_index, 1, offset] = case.values[r][position]
    return expected


def run_and_check(
    layer: AttentionLayer,
    *,
    query_lens: list[int],
    seq_lens: list[int],
    block_size: int = 4,
    num_layers: int = 1,
    seed: int = 0,
) -> None:
    case = make_case(
        query_lens=query_lens,
        seq_lens=seq_lens,
        num_heads=layer.num_heads,
        num_kv_heads=layer.num_kv_heads,
        head_size=layer.head_size,
        block_size=block_size,
        num_layers=num_layers,
        layer_index=layer.layer_index,
        seed=seed,
    )
    query, key, value, metadata = step_inputs(case, block_size)
    before = case.kv_cache.clone()
    backend = ReferenceAttentionBackend(backend_config(block_size, num_layers))

    output = backend.forward(
        layer, query, key, value, case.kv_cache[:, layer.layer_index], metadata
    )

    expected = torch.cat(
        [
            dense_attention(layer, q, k, v)
            for q, k, v in zip(case.queries, case.keys, case.values, strict=True)
        ]
    )
    assert output.shape == query.shape and output.dtype == query.dtype
    torch.testing.assert_close(output, expected, **TOLERANCE)
    # Only this layer's slots for this step's tokens changed, every other byte is as it was.
    expected_cache = expected_cache_after_step(case, before, layer.layer_index, block_size)
    assert torch.equal(case.kv_cache, expected_cache)


@pytest.mark.parametrize("num_heads,num_kv_heads", [(4, 4), (4, 2), (8, 2)])
def test_ragged_mixed_batch_matches_dense(num_heads: int, num_kv_heads: int) -> None:
    # Full prefill, decode on a cached prefix, a chunk on a cached prefix, a second prefill.
    run_and_check(
        make_layer(num_heads=num_heads, num_kv_heads=num_kv_heads),
        query_lens=[5, 1, 3, 8],
        seq_lens=[5, 9, 7, 8],
    )


def test_decode_only_matches_dense() -> None:
    run_and_check(
        make_layer(num_heads=8, num_kv_heads=2), query_lens=[1, 1, 1], seq_lens=[1, 6, 13]
    )


def test_lengths_not_multiple_of_block_size() -> None:
    run_and_check(
        make_layer(), query_lens=[1, 15, 4, 33], seq_lens=[1, 15, 17, 33], block_size=16, seed=3
    )


def test_one_layer_of_several_sharing_the_allocation() -> None:
    # Layer 1 of 3: the layer view is strided, and layers 0 and 2 must keep every byte.
    run_and_check(
        make_layer(layer_index=1), query_lens=[3, 2, 6], seq_lens=[6, 2, 10], num_layers=3, seed=5
    )


def test_sliding_window_matches_dense() -> None:
    run_and_check(make_layer(sliding_window=3), query_lens=[7, 1, 4], seq_lens=[7, 11, 9], seed=7)


def test_soft_cap_matches_dense() -> None:
    layer = attrs.evolve(make_layer(logits_soft_cap=2.0), scale=1.5)  # large logits: cap binds
    run_and_check(layer, query_lens=[6, 1, 2], seq_lens=[6, 5, 9], seed=9)


def test_cached_prefix_then_new_chunk_in_two_calls() -> None:
    """The prefix goes through the backend's own write path in step one, then is read back."""
    block_size, layer = 4, make_layer(num_heads=4, num_kv_heads=1, layer_index=1)
    prefix_lens, seq_lens = [5, 3, 8], [9, 4, 14]
    case = make_case(
        query_lens=seq_lens,  # every position gets a query; nothing is pre-written
        seq_lens=seq_lens,
        num_heads=4,
        num_kv_heads=1,
        head_size=8,
        block_size=block_size,
        num_layers=2,
        layer_index=1,
        seed=11,
    )
    backend = ReferenceAttentionBackend(backend_config(block_size, num_layers=2))
    kv_layer = case.kv_cache[:, 1]
    outputs = []
    for starts, ends in ((None, prefix_lens), (prefix_lens, seq_lens)):
        begins = starts or [0] * len(ends)
        metadata, _ = build_metadata(
            [end - begin for begin, end in zip(begins, ends, strict=True)],
            ends,
            case.block_tables,
            block_size,
            "cpu",
        )
        rows = list(zip(begins, ends, strict=True))
        outputs.append(
            backend.forward(
                layer,
                torch.cat([q[b:e] for q, (b, e) in zip(case.queries, rows, strict=True)]),
                torch.cat([k[b:e] for k, (b, e) in zip(case.keys, rows, strict=True)]),
                torch.cat([v[b:e] for v, (b, e) in zip(case.values, rows, strict=True)]),
                kv_layer,
                metadata,
            )
        )
    dense = [
        dense_attention(layer, q, k, v)
        for q, k, v in zip(case.queries, case.keys, case.values, strict=True)
    ]
    first = torch.cat([d[:p] for d, p in zip(dense, prefix_lens, strict=True)])
    second = torch.cat([d[p:] for d, p in zip(dense, prefix_lens, strict=True)])
    torch.testing.assert_close(outputs[0], first, **TOLERANCE)
    torch.testing.assert_close(outputs[1], second, **TOLERANCE)


def test_padding_rows_write_only_the_null_block() -> None:
    block_size, layer = 4, make_layer()
    case = make_case(
        query_lens=[3, 1],
        seq_lens=[3, 6],
        num_heads=4,
        num_kv_heads=2,
        head_size=8,
        block_size=block_size,
        num_layers=2,
        layer_index=0,
        seed=13,
    )
    query, key, value, metadata = step_inputs(case, block_size)
    num_padding = 3
    generator = torch.Generator().manual_seed(14)
    query = torch.cat([query, torch.randn(num_padding, 4, 8, generator=generator)])
    key = torch.cat([key, torch.randn(num_padding, 2, 8, generator=generator)])
    value = torch.cat([value, torch.randn(num_padding, 2, 8, generator=generator)])
    metadata = attrs.evolve(
        metadata,
        slot_mapping=torch.cat([metadata.slot_mapping, torch.arange(num_padding)]),
    )
    before = case.kv_cache.clone()

    output = ReferenceAttentionBackend(backend_config(block_size, 2)).forward(
        layer, query, key, value, case.kv_cache[:, 0], metadata
    )

    expected = torch.cat(
        [
            dense_attention(layer, q, k, v)
            for q, k, v in zip(case.queries, case.keys, case.values, strict=True)
        ]
    )
    torch.testing.assert_close(output[: metadata.num_actual_tokens], expected, **TOLERANCE)
    expected_cache = expected_cache_after_step(case, before, 0, block_size)
    expected_cache[0, 0, :, :num_padding] = torch.stack([key[-num_padding:], value[-num_padding:]])
    assert torch.equal(case.kv_cache, expected_cache)


def test_bfloat16_output_dtype_and_values() -> None:
    block_size, layer = 4, make_layer()
    case = make_case(
        query_lens=[4, 1],
        seq_lens=[4, 7],
        num_heads=4,
        num_kv_heads=2,
        head_size=8,
        block_size=block_size,
        num_layers=1,
        layer_index=0,
        seed=15,
        dtype=torch.bfloat16,
    )
    query, key, value, metadata = step_inputs(case, block_size)
    output = ReferenceAttentionBackend(backend_config(block_size, 1)).forward(
        layer, query, key, value, case.kv_cache[:, 0], metadata
    )
    expected = torch.cat(
        [
            dense_attention(layer, q.float(), k.float(), v.float())
            for q, k, v in zip(case.queries, case.keys, case.values, strict=True)
        ]
    )
    assert output.dtype == torch.bfloat16
    # Scores and softmax run in float32, so only the final cast rounds.
    torch.testing.assert_close(output.float(), expected, atol=8e-3, rtol=8e-3)
