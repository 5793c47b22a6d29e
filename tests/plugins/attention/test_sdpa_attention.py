"""The torch-sdpa backend against the reference backend on random paged layouts."""

from __future__ import annotations

import attrs
import pytest
import torch

from tenon.plugins.attention.reference import ReferenceAttentionBackend
from tenon.plugins.attention.sdpa import SdpaAttentionBackend
from tenon.spec.attention import AttentionLayer
from tenon.testing.paged_layouts import backend_config, make_case, make_layer, step_inputs
from tenon.testing.paged_runner import build_metadata

TOLERANCE = {
    torch.float32: {"atol": 1e-5, "rtol": 1e-5},
    # SDPA computes in the input dtype while the reference rounds only its output.
    torch.float16: {"atol": 3e-3, "rtol": 3e-3},
    torch.bfloat16: {"atol": 3e-2, "rtol": 3e-2},
}


def compare(
    layers: list[AttentionLayer],
    *,
    query_lens: list[int],
    seq_lens: list[int],
    block_size: int = 4,
    num_layers: int = 1,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    causal: bool = True,
    max_pairs_per_call: int | None = None,
) -> SdpaAttentionBackend:
    """Runs every layer (same step, one prepare) through both backends on copies of one cache:
    outputs match within the dtype's tolerance and the caches end up byte-identical."""
    first = layers[0]
    case = make_case(
        query_lens=query_lens,
        seq_lens=seq_lens,
        num_heads=first.num_heads,
        num_kv_heads=first.num_kv_heads,
        head_size=first.head_size,
        block_size=block_size,
        num_layers=num_layers,
        layer_index=first.layer_index,
        seed=seed,
        dtype=dtype,
    )
    query, key, value, metadata = step_inputs(case, block_size)
    metadata = attrs.evolve(metadata, causal=causal)
    config = backend_config(block_size, num_layers)
    reference = ReferenceAttentionBackend(config)
    sdpa = (
        SdpaAttentionBackend(config)
        if max_pairs_per_call is None
        else SdpaAttentionBackend(config, max_pairs_per_call=max_pairs_per_call)
    )
    reference_cache, sdpa_cache = case.kv_cache.clone(), case.kv_cache.clone()
    sdpa.prepare(metadata)
    for layer in layers:
        args = (query, key, value)
        expected = reference.forward(layer, *args, reference_cache[:, layer.layer_index], metadata)
        output = sdpa.forward(layer, *args, sdpa_cache[:, layer.layer_index], metadata)
        assert output.shape == query.shape and output.dtype == query.dtype
        torch.testing.assert_close(output, expected, **TOLERANCE[dtype])
    assert torch.equal(sdpa_cache, reference_cache)
    return sdpa


@pytest.mark.parametrize("num_heads,num_kv_heads", [(4, 4), (4, 2), (8, 2)])
def test_ragged_mixed_batch_matches_reference(num_heads: int, num_kv_heads: int) -> None:
    # Full prefill, decode on a cached prefix, a chunk on a cached prefix, a second prefill.
    compare(
        [make_layer(num_heads=num_heads, num_kv_heads=num_kv_heads)],
        query_lens=[5, 1, 3, 8],
        seq_lens=[5, 9, 7, 8],
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_matches_reference(dtype: torch.dtype) -> None:
    compare(
        [make_layer(num_heads=8, num_kv_heads=2)],
        query_lens=[5, 1, 3, 8],
        seq_lens=[5, 9, 7, 8],
        seed=1,
        dtype=dtype,
    )


def test_decode_only_matches_reference() -> None:
    sdpa = compare(
        [make_layer(num_heads=8, num_kv_heads=2)], query_lens=[1, 1, 1], seq_lens=[1, 6, 13]
    )
    [group] = sdpa._groups
    assert group.padded_rows is None  # the query is a view, no padding rows



@pytest.mark.parametrize("seq_lens", [[13], [7, 7, 7]])
def test_decodes_of_equal_length_slice_the_keys_without_a_mask(seq_lens: list[int]) -> None:
    layers = [make_layer(num_heads=8, num_kv_heads=2), make_layer(layer_index=1, sliding_window=4)]
    query_lens = [1] * len(seq_lens)
    sdpa = compare(layers, query_lens=query_lens, seq_lens=seq_lens, num_layers=2, seed=18)
    [group] = sdpa._groups
    assert group.uniform_seq_len == seq_lens[0]
    assert list(group.masks) == [4]  # only the window that hides keys needs a mask


def test_not_causal_queries_of_equal_length_need_no_mask() -> None:
    sdpa = compare([make_layer()], query_lens=[3, 3], seq_lens=[6, 6], causal=False, seed=19)
    [group] = sdpa._groups
    assert group.uniform_seq_len == 6 and not group.masks

def test_lengths_not_multiple_of_block_size() -> None:
    compare(
        [make_layer()], query_lens=[1, 15, 4, 33], seq_lens=[1, 15, 17, 33], block_size=16, seed=3
    )


def test_request_without_query_rows_is_skipped() -> None:
    compare([make_layer()], query_lens=[3, 0, 2], seq_lens=[3, 5, 6], seed=4)


def test_several_layers_share_the_allocation_with_one_prepare() -> None:
    # Layers 1 and 2 of 3 in one step: strided views, one plan, every other byte kept.
    layers = [make_layer(layer_index=1), make_layer(layer_index=2)]
    compare(layers, query_lens=[3, 2, 6], seq_lens=[6, 2, 10], num_layers=3, seed=5)


def test_sliding_windows_of_different_layers_in_one_step() -> None:
    layers = [
        make_layer(layer_index=0, sliding_window=3),
        make_layer(layer_index=1, sliding_window=None),
        make_layer(layer_index=2, sliding_window=1),
        make_layer(layer_index=3, sliding_window=3),
    ]
    sdpa = compare(layers, query_lens=[7, 1, 4], seq_lens=[7, 11, 9], num_layers=4, seed=7)
    assert sorted(sdpa._groups[0].masks, key=str) == [1, 3, None]  # one mask per window


def test_sliding_window_decode_only() -> None:
    compare([make_layer(sliding_window=4)], query_lens=[1, 1, 1], seq_lens=[2, 9, 14], seed=8)


def test_padding_rows_never_get_an_empty_mask_row() -> None:
    # Request 0's padding rows would sit at positions 8..11, past every key with window 1;
    # SDPA turns an all-False row into NaN, so padding rows see key 0 instead.
    sdpa = compare([make_layer(sliding_window=1)], query_lens=[1, 5], seq_lens=[8, 5], seed=17)
    [group] = sdpa._groups
    mask = group.masks[1]  # [B, 1, max_q, S]
    assert mask.shape == (2, 1, 5, 8) and bool(mask.any(dim=-1).all())
    assert mask[0, 0, 1:].nonzero().tolist() == [[0, 0], [1, 0], [2, 0], [3, 0]]


def test_soft_cap_goes_to_the_reference_math() -> None:
    layer = attrs.evolve(make_layer(logits_soft_cap=2.0), scale=1.5)  # large logits: cap binds
    compare([layer], query_lens=[6, 1, 2], seq_lens=[6, 5, 9], seed=9)


def test_not_causal_attends_every_cached_key() -> None:
    compare([make_layer()], query_lens=[4, 1, 3], seq_lens=[4, 6, 9], causal=False, seed=10)


def test_grouped_path_under_a_tiny_budget() -> None:
    # 16 pairs: each request is its own group, including the one larger than the budget.
    sdpa = compare(
        [make_layer(num_heads=8, num_kv_heads=2), make_layer(layer_index=1, sliding_window=2)],
        query_lens=[5, 1, 3, 8],
        seq_lens=[5, 9, 7, 8],
        num_layers=2,
        max_pairs_per_call=16,
        seed=12,
    )
    assert [(g.token_start, g.token_end) for g in sdpa._groups] == [(0, 5), (5, 6), (6, 9), (9, 17)]


def test_a_prefill_beside_decodes_gets_its_own_group() -> None:
    # Padding the decodes to the prefill's 12 rows would waste most of the call.
    sdpa = compare([make_layer()], query_lens=[1, 1, 12, 1, 1], seq_lens=[5, 9, 12, 4, 7], seed=13)
    assert [(g.token_start, g.token_end) for g in sdpa._groups] == [(0, 2), (2, 15), (15, 16)]


def test_padding_rows_are_zero_and_write_the_null_block() -> None:
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
        seed=14,
    )
    query, key, value, metadata = step_inputs(case, block_size)
    num_padding = 3
    generator = torch.Generator().manual_seed(15)
    query = torch.cat([query, torch.randn(num_padding, 4, 8, generator=generator)])
    key = torch.cat([key, torch.randn(num_padding, 2, 8, generator=generator)])
    value = torch.cat([value, torch.randn(num_padding, 2, 8, generator=generator)])
    metadata = attrs.evolve(
        metadata, slot_mapping=torch.cat([metadata.slot_mapping, torch.arange(num_padding)])
    )
    reference_cache, sdpa_cache = case.kv_cache.clone(), case.kv_cache.clone()
    config = backend_config(block_size, 2)
    expected = ReferenceAttentionBackend(config).forward(
        layer, query, key, value, reference_cache[:, 0], metadata
    )
    sdpa = SdpaAttentionBackend(config)
    sdpa.prepare(metadata)
    output = sdpa.forward(layer, query, key, value, sdpa_cache[:, 0], metadata)
    torch.testing.assert_close(output, expected, **TOLERANCE[torch.float32])
    assert torch.equal(output[-num_padding:], torch.zeros(num_padding, 4, 8))
    assert torch.equal(sdpa_cache, reference_cache)


def test_prepare_once_per_step_and_forward_without_prepare() -> None:
    """The plan is built once per step: forward reuses it for every layer, and a forward whose
    metadata was not prepared plans for itself instead of using a stale plan."""
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
        seed=16,
    )
    config = backend_config(block_size, num_layers=2)
    reference, sdpa = ReferenceAttentionBackend(config), SdpaAttentionBackend(config)
    reference_cache, sdpa_cache = case.kv_cache.clone(), case.kv_cache.clone()
    for step, (starts, ends) in enumerate(((None, prefix_lens), (prefix_lens, seq_lens))):
        begins = starts or [0] * len(ends)
        lengths = [end - begin for begin, end in zip(begins, ends, strict=True)]
        metadata, _ = build_metadata(lengths, ends, case.block_tables, block_size, "cpu")
        rows = list(zip(begins, ends, strict=True))
        args = (
            torch.cat([q[b:e] for q, (b, e) in zip(case.queries, rows, strict=True)]),
            torch.cat([k[b:e] for k, (b, e) in zip(case.keys, rows, strict=True)]),
            torch.cat([v[b:e] for v, (b, e) in zip(case.values, rows, strict=True)]),
        )
        if step == 0:
            sdpa.prepare(metadata)
            planned = sdpa._groups
        output = sdpa.forward(layer, *args, sdpa_cache[:, 1], metadata)
        if step == 0:  # step 1 skipped prepare: forward planned it, replacing step 0's plan
            assert sdpa._groups is planned  # reused, not rebuilt
        else:
            assert sdpa._groups is not planned
        expected = reference.forward(layer, *args, reference_cache[:, 1], metadata)
        torch.testing.assert_close(output, expected, **TOLERANCE[torch.float32])
    assert torch.equal(sdpa_cache, reference_cache)
