"""The two-stage vocabulary argmax equals torch.argmax exactly, ties and NaN included."""

from __future__ import annotations

import pytest
import torch

from tenon.sampling import Sampler, SamplingParams, SamplingRow, build_sampling_metadata
from tenon.sampling.argmax import num_vocab_chunks, vocab_argmax

NEG_INF = float("-inf")
NAN = float("nan")
# Llama 3 (128 x 1002), Qwen 2 (128 x 1187), StarCoder (128 x 384), 64 x 513 (odd: 64 chunks).
CHUNKED_VOCAB_SIZES = [128256, 151936, 49152, 32832]


def seeded_logits(num_rows: int, vocab_size: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(num_rows, vocab_size, generator=generator) * 4.0


def assert_matches_torch(logits: torch.Tensor) -> torch.Tensor:
    result = vocab_argmax(logits)
    expected = logits.argmax(dim=-1)
    assert result.dtype == torch.int64 and result.shape == expected.shape
    assert torch.equal(result, expected), f"{result.tolist()} != {expected.tolist()}"
    return result


def test_chunk_counts_and_fallbacks() -> None:
    assert num_vocab_chunks(1, 128256) == 128
    assert num_vocab_chunks(31, 151936) == 128
    assert num_vocab_chunks(1, 32832) == 64  # 32832 = 64 x 513, not a multiple of 128
    assert num_vocab_chunks(32, 128256) is None  # one block per row fills the GPU
    assert num_vocab_chunks(1, 50257) is None  # GPT-2's vocabulary is prime to 32
    assert num_vocab_chunks(1, 8192) is None  # short rows: one block each is quick


@pytest.mark.parametrize("vocab_size", CHUNKED_VOCAB_SIZES + [50257, 8192])
@pytest.mark.parametrize("num_rows", [1, 3, 40])
def test_random_logits_match_torch(device: torch.device, vocab_size: int, num_rows: int) -> None:
    logits = seeded_logits(num_rows, vocab_size, seed=vocab_size + num_rows).to(device)
    assert_matches_torch(logits)


def test_ties_within_and_across_chunks_take_the_first_index(device: torch.device) -> None:
    vocab_size = 128256  # chunks of 1002
    logits = seeded_logits(5, vocab_size, seed=7)
    top = float(logits.max()) + 1.0
    tied_positions = [
        [5, 6, 900],  # several ties inside chunk 0
        [1001, 1002],  # the last position of chunk 0 and the first of chunk 1
        [70000, 3006, 3007, 128255],  # first tie in chunk 3, later ones after it
        [128255, 127254],  # the last two chunks: the earlier chunk wins
        [2004, 2003 + 1002 * 9],  # same offset in chunks 2 and 11
    ]
    for row, positions in enumerate(tied_positions):
        logits[row, positions] = top
    result = assert_matches_torch(logits.to(device))
    assert result.tolist() == [5, 1001, 3006, 127254, 2004]


def test_max_value_everywhere_gives_index_zero(device: torch.device) -> None:
    logits = torch.full((2, 49152), 3.5)
    logits[1, :384] = 1.0  # chunk 0 lower: the first index of chunk 1
    assert assert_matches_torch(logits.to(device)).tolist() == [0, 384]


def test_negative_infinity_rows(device: torch.device) -> None:
    logits = seeded_logits(3, 151936, seed=8)
    logits[0] = NEG_INF  # a row with every token masked
    logits[1, :150000] = NEG_INF  # only the last chunks finite
    logits[2, 1187 * 5 + 3] = float("inf")
    result = assert_matches_torch(logits.to(device))
    assert result[0] == 0 and result[1] >= 150000 and result[2] == 1187 * 5 + 3


def test_nan_counts_as_the_maximum_like_torch(device: torch.device) -> None:
    logits = seeded_logits(3, 128256, seed=9)
    logits[0, [40000, 2500]] = NAN  # the first NaN wins, across chunks
    logits[1, 1200] = float("inf")
    logits[1, 1300] = NAN  # NaN beats +inf in the same chunk
    logits[2, [128255]] = NAN  # the very last position
    result = assert_matches_torch(logits.to(device))
    assert result.tolist() == [2500, 1300, 128255]


def test_strided_rows_and_empty_batch(device: torch.device) -> None:
    wide = seeded_logits(4, 128256 + 64, seed=10).to(device)
    assert_matches_torch(wide[:, :128256])  # rows not packed: a view still
    assert_matches_torch(wide[:, :128256].t().contiguous().t())  # column-major: plain argmax
    assert vocab_argmax(torch.empty(0, 128256, device=device)).shape == (0,)


def test_sampler_greedy_rows_use_the_vocab_argmax(device: torch.device) -> None:
    # A greedy row, a random row and a greedy row on a chunked vocabulary with a cross-chunk tie.
    vocab_size = 49152
    logits = seeded_logits(3, vocab_size, seed=11)
    logits[0, [800, 400]] = 100.0
    params = [
        SamplingParams(temperature=0.0),
        SamplingParams(temperature=0.8, seed=3),
        SamplingParams(temperature=0.0),
    ]
    rows = [SamplingRow(params=p, prompt_token_ids=[1], output_token_ids=[]) for p in params]
    metadata = build_sampling_metadata(rows, vocab_size, device)
    sampled = Sampler()(logits.to(device), metadata).sampled_token_ids.cpu()
    assert sampled[0] == 400 and sampled[2] == int(logits[2].argmax())
    all_greedy = build_sampling_metadata([rows[0], rows[2]], vocab_size, device)
    greedy = Sampler()(logits[[0, 2]].to(device), all_greedy).sampled_token_ids.cpu()
    assert greedy.tolist() == [400, int(logits[2].argmax())]
