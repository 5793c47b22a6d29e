from __future__ import annotations

import pytest
import torch

from tenon.sampling import (
    SamplingParams,
    SamplingRow,
    build_sampling_metadata,
    make_step_generator,
    mix_seed,
)
from tenon.sampling.seeding import splitmix64

VOCAB_SIZE = 50


def test_splitmix64_matches_the_published_sequence() -> None:
    # SplitMix64 seeded with 0 yields 0xE220A8397B1DCDAF, then 0x6E789E6AA1B965F4.
    assert splitmix64(0) == 0xE220A8397B1DCDAF
    assert splitmix64(0x9E3779B97F4A7C15) == 0x6E789E6AA1B965F4


def test_mix_seed_is_stable_and_spreads() -> None:
    assert mix_seed(42, 3) == splitmix64(splitmix64(42) ^ 3)
    assert mix_seed(-1, 0) == splitmix64(splitmix64((1 << 64) - 1))
    seeds = {mix_seed(seed, step) for seed in range(100) for step in range(100)}
    assert len(seeds) == 100 * 100
    assert all(0 <= seed < 1 << 64 for seed in seeds)


def test_step_generator_depends_on_seed_and_step() -> None:
    def draw(seed: int, step: int) -> torch.Tensor:
        return torch.empty(8).exponential_(generator=make_step_generator(seed, step, "cpu"))

    assert torch.equal(draw(7, 2), draw(7, 2))
    assert not torch.equal(draw(7, 2), draw(7, 3))
    assert not torch.equal(draw(7, 2), draw(8, 2))


def _mixed_rows() -> list[SamplingRow]:
    return [
        SamplingRow(SamplingParams(temperature=0.0, top_k=5, seed=3), [1, 2], [4]),
        SamplingRow(
            SamplingParams(temperature=0.7, top_k=10, top_p=0.9, seed=99, logprobs=2),
            [5, 6, 7],
            [8, 8],
        ),
        SamplingRow(
            SamplingParams(min_p=0.1, top_k=VOCAB_SIZE, repetition_penalty=1.3, logprobs=4),
            [9],
            [],
        ),
        SamplingRow(SamplingParams(presence_penalty=0.5, frequency_penalty=-0.2), [], [1, 2, 3]),
    ]


def test_builder_gathers_rows(device: torch.device) -> None:
    metadata = build_sampling_metadata(_mixed_rows(), VOCAB_SIZE, device)
    assert metadata.num_reqs == 4
    assert metadata.temperature.device.type == device.type
    assert metadata.temperature.dtype == torch.float32
    assert metadata.top_k.dtype == torch.int32
    assert metadata.temperature.tolist() == pytest.approx([0.0, 0.7, 1.0, 1.0])
    # Greedy row 0 has top_k 1 and neutral top-p/min-p; top_k >= vocab_size means off.
    assert metadata.top_k.tolist() == [1, 10, 0, 0]
    assert metadata.top_p.tolist() == pytest.approx([1.0, 0.9, 1.0, 1.0])
    assert metadata.min_p.tolist() == pytest.approx([0.0, 0.0, 0.1, 0.0])
    assert metadata.presence_penalties.tolist() == pytest.approx([0.0, 0.0, 0.0, 0.5])
    assert metadata.frequency_penalties.tolist() == pytest.approx([0.0, 0.0, 0.0, -0.2])
    assert metadata.repetition_penalties.tolist() == pytest.approx([1.0, 1.0, 1.3, 1.0])
    assert (metadata.all_greedy, metadata.all_random) == (False, False)
    assert (metadata.no_penalties, metadata.no_top_k) == (False, False)
    assert (metadata.no_top_p, metadata.no_min_p) == (False, False)
    assert metadata.max_top_k == 10
    assert metadata.all_top_k is False
    assert metadata.max_num_logprobs == 4
    # Only the seeded random row gets a generator.
    assert list(metadata.generators) == [1]
    assert metadata.prompt_token_ids is not None and metadata.output_token_ids is not None
    pad = VOCAB_SIZE
    assert metadata.prompt_token_ids.tolist() == [[1, 2, pad], [5, 6, 7], [9, pad, pad],
                                                  [pad, pad, pad]]
    assert metadata.output_token_ids.tolist() == [[4, pad, pad], [8, 8, pad], [pad, pad, pad],
                                                  [1, 2, 3]]


def test_seeded_generator_is_seeded_from_output_length() -> None:
    row = SamplingRow(SamplingParams(seed=1234), [1, 2, 3], [4, 5])
    metadata = build_sampling_metadata([row], VOCAB_SIZE, "cpu")
    drawn = torch.empty(16).exponential_(generator=metadata.generators[0])
    expected = torch.empty(16).exponential_(generator=make_step_generator(1234, 2, "cpu"))
    assert torch.equal(drawn, expected)


def test_builder_flags_for_plain_batches() -> None:
    greedy = build_sampling_metadata(
        [SamplingRow(SamplingParams(temperature=0.0), [1], [2])] * 3, VOCAB_SIZE, "cpu"
    )
    assert (greedy.all_greedy, greedy.all_random) == (True, False)
    assert (greedy.no_top_k, greedy.no_top_p, greedy.no_min_p) == (True, True, True)
    assert greedy.no_penalties and greedy.prompt_token_ids is None
    assert greedy.output_token_ids is None and greedy.max_num_logprobs is None
    assert greedy.max_top_k is None and greedy.generators == {}
    assert greedy.top_k.tolist() == [1, 1, 1] and greedy.all_top_k is True

    shared = torch.Generator().manual_seed(5)
    presence_only = build_sampling_metadata(
        [SamplingRow(SamplingParams(presence_penalty=1.0), [1], [])], VOCAB_SIZE, "cpu", shared
    )
    assert (presence_only.all_greedy, presence_only.all_random) == (False, True)
    assert presence_only.shared_generator is shared
    # Prompt ids are only needed by the repetition penalty.
    assert presence_only.prompt_token_ids is None
    assert presence_only.output_token_ids is not None
    assert presence_only.output_token_ids.shape == (1, 0)
    assert presence_only.max_num_logprobs is None


def test_builder_rejects_an_empty_batch() -> None:
    with pytest.raises(ValueError, match="at least one row"):
        build_sampling_metadata([], VOCAB_SIZE, "cpu")


def test_all_top_k_counts_greedy_rows_as_top_k_one() -> None:
    rows = [
        SamplingRow(SamplingParams(top_k=8), [], []),
        SamplingRow(SamplingParams(temperature=0.0), [], []),
        SamplingRow(SamplingParams(top_k=3, top_p=0.5), [], []),
    ]
    metadata = build_sampling_metadata(rows, VOCAB_SIZE, "cpu")
    assert metadata.top_k.tolist() == [8, 1, 3]
    assert (metadata.all_top_k, metadata.max_top_k, metadata.no_top_k) == (True, 8, False)
    # A random row without top-k (or with top_k >= vocab_size) turns the fast path off.
    rows.append(SamplingRow(SamplingParams(top_k=VOCAB_SIZE + 1), [], []))
    metadata = build_sampling_metadata(rows, VOCAB_SIZE, "cpu")
    assert (metadata.all_top_k, metadata.max_top_k) == (False, 8)
    # Random rows that all skip top-k make the stage a no-op, whatever greedy rows hold.
    rows = [SamplingRow(SamplingParams(), [], []), SamplingRow(SamplingParams(temperature=0.0), [], [])]
    metadata = build_sampling_metadata(rows, VOCAB_SIZE, "cpu")
    assert (metadata.no_top_k, metadata.max_top_k, metadata.all_top_k) == (True, None, False)
