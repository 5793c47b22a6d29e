from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
import torch

from tenon.sampling import (
    Sampler,
    SamplingParams,
    SamplingRow,
    build_sampling_metadata,
    compute_prompt_logprobs,
    make_step_generator,
    random_sample,
)

VOCAB_SIZE = 64
NEG_INF = float("-inf")


def _reference_logits(row_logits: torch.Tensor, row: SamplingRow) -> torch.Tensor:
    """One row through penalties, temperature, min-p, top-k and top-p, written out plainly."""
    params = row.params
    x = row_logits.clone()
    output_counts = Counter(row.output_token_ids)
    for token_id in set(row.prompt_token_ids) | set(row.output_token_ids):
        value = float(x[token_id])
        x[token_id] = (value / params.repetition_penalty if value > 0
                       else value * params.repetition_penalty)
    for token_id, count in output_counts.items():
        x[token_id] -= params.frequency_penalty * count + params.presence_penalty
    if params.is_greedy:
        return x
    x = x / params.temperature
    probs = torch.softmax(x, dim=-1)
    x[probs < probs.max() * params.min_p] = NEG_INF
    if 0 < params.top_k < VOCAB_SIZE:
        x[x < torch.sort(x, descending=True).values[params.top_k - 1]] = NEG_INF
    if params.top_p < 1.0:
        probs = torch.softmax(x, dim=-1)
        order = torch.argsort(probs, descending=True).tolist()
        total = 0.0
        for position, token_id in enumerate(order):
            total += float(probs[token_id])
            if total >= params.top_p:
                x[order[position + 1:]] = NEG_INF
                break
    return x


def _reference_token(row_logits: torch.Tensor, row: SamplingRow, device: torch.device) -> int:
    x = _reference_logits(row_logits, row)
    if row.params.is_greedy:
        return int(x.argmax())
    assert row.params.seed is not None
    generator = make_step_generator(row.params.seed, len(row.output_token_ids), device)
    q = torch.empty(VOCAB_SIZE, device=device).exponential_(generator=generator).cpu()
    return int((torch.softmax(x, dim=-1) / q).argmax())


def _mixed_params() -> list[SamplingParams]:
    return [
        SamplingParams(temperature=0.0, repetition_penalty=1.4, presence_penalty=0.5),
        SamplingParams(temperature=0.7, top_k=10, seed=1),
        SamplingParams(top_p=0.8, min_p=0.05, seed=2, frequency_penalty=0.5),
        SamplingParams(temperature=1.3, top_k=5, top_p=0.9, repetition_penalty=1.2, seed=3),
        SamplingParams(seed=4),
        SamplingParams(temperature=0.0),
        SamplingParams(temperature=1.5, min_p=0.2, seed=6),
        SamplingParams(temperature=2.0, top_p=0.5, seed=8),
    ]


def _all_top_k_params() -> list[SamplingParams]:
    # Every row uses top-k (greedy rows count), so top-p runs on the top-k candidates only.
    return [
        SamplingParams(temperature=2.0, top_k=30, top_p=0.5, seed=21),
        SamplingParams(temperature=0.0, presence_penalty=1.0),
        SamplingParams(top_k=3, seed=22),
        SamplingParams(temperature=1.5, top_k=20, top_p=0.8, min_p=0.1, seed=23),
        SamplingParams(temperature=0.8, top_k=12, top_p=0.95, repetition_penalty=1.5, seed=24),
        SamplingParams(temperature=3.0, top_k=40, top_p=0.3, seed=25),
        SamplingParams(top_k=1, seed=26),
        SamplingParams(temperature=2.5, top_k=25, top_p=0.6, frequency_penalty=1.0, seed=27),
    ]


def _step_logits(step: int, num_rows: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(100 + step)
    return torch.randn(num_rows, VOCAB_SIZE, generator=generator) * 3.0


@pytest.mark.parametrize("params_factory", [_mixed_params, _all_top_k_params])
def test_batch_matches_reference_over_steps(
    device: torch.device, params_factory: Callable[[], list[SamplingParams]]
) -> None:
    params_list = params_factory()
    prompts = [[1, 2, 3, 3], [4, 5], [6], [7, 8, 9], [10], [11, 12], [13], [14, 15]]
    outputs: list[list[int]] = [[] for _ in params_list]
    sampler = Sampler()
    for step in range(8):
        rows = [SamplingRow(p, prompt, list(out))
                for p, prompt, out in zip(params_list, prompts, outputs, strict=True)]
        logits = _step_logits(step, len(rows))
        metadata = build_sampling_metadata(rows, VOCAB_SIZE, device)
        device_logits = logits.to(device)
        before = device_logits.clone()
        sampled = sampler(device_logits, metadata).sampled_token_ids
        assert torch.equal(device_logits, before)
        assert sampled.dtype == torch.int64 and sampled.shape == (len(rows),)
        expected = [_reference_token(logits[i], row, device) for i, row in enumerate(rows)]
        assert sampled.tolist() == expected
        for out, token_id in zip(outputs, sampled.tolist(), strict=True):
            out.append(token_id)


def test_all_greedy_is_argmax(random_logits: torch.Tensor, device: torch.device) -> None:
    rows = [SamplingRow(SamplingParams(temperature=0.0), [], []) for _ in range(6)]
    metadata = build_sampling_metadata(rows, VOCAB_SIZE, device)
    output = Sampler()(random_logits.to(device), metadata)
    assert output.sampled_token_ids.tolist() == random_logits.argmax(dim=-1).tolist()
    assert output.logprobs is None and output.logprob_token_ids is None
    assert output.sampled_token_ranks is None


def test_logprobs_come_from_raw_logits(random_logits: torch.Tensor, device: torch.device) -> None:
    rows = [
        SamplingRow(SamplingParams(temperature=0.0, repetition_penalty=3.0, logprobs=3), [5], []),
        SamplingRow(SamplingParams(seed=9, logprobs=0, presence_penalty=2.0), [], [1, 2]),
        SamplingRow(SamplingParams(seed=10, top_k=3), [], []),
        SamplingRow(SamplingParams(seed=11, temperature=1.5, logprobs=1), [], [7]),
    ]
    metadata = build_sampling_metadata(rows, VOCAB_SIZE, device)
    logits = random_logits[:4]
    output = Sampler()(logits.to(device), metadata)
    assert output.logprob_token_ids is not None and output.logprobs is not None
    assert output.sampled_token_ranks is not None
    assert output.logprob_token_ids.shape == (4, 4) and output.logprobs.shape == (4, 4)
    raw = torch.log_softmax(logits.double(), dim=-1)
    sampled = output.sampled_token_ids.tolist()
    for row_index, token_id in enumerate(sampled):
        ids = output.logprob_token_ids[row_index].tolist()
        assert ids[0] == token_id
        assert ids[1:] == torch.argsort(raw[row_index], descending=True)[:3].tolist()
        torch.testing.assert_close(
            output.logprobs[row_index].cpu().double(), raw[row_index, ids], rtol=0, atol=1e-5
        )
        expected_rank = 1 + int((raw[row_index] > raw[row_index, token_id]).sum())
        assert int(output.sampled_token_ranks[row_index]) == expected_rank


def _decode(
    target: SamplingParams, others: list[SamplingParams], target_index: int, device: torch.device
) -> list[int]:
    """Decode 6 steps of `target` placed at `target_index` among `others`; return its tokens."""
    params_list = list(others)
    params_list.insert(target_index, target)
    outputs: list[list[int]] = [[] for _ in params_list]
    shared = torch.Generator(device=device).manual_seed(len(others) * 31 + target_index)
    for step in range(6):
        rows = [SamplingRow(p, [3, 4, 5], list(out))
                for p, out in zip(params_list, outputs, strict=True)]
        metadata = build_sampling_metadata(rows, VOCAB_SIZE, device, shared)
        # The target's logits are the same in every batch; the other rows' are not.
        logits = _step_logits(step, len(rows) + 3)[3:]
        logits[target_index] = _step_logits(step, 1)[0] * 0.5
        sampled = Sampler()(logits.to(device), metadata).sampled_token_ids.tolist()
        for out, token_id in zip(outputs, sampled, strict=True):
            out.append(token_id)
    return outputs[target_index]


def test_seeded_row_is_independent_of_batch(device: torch.device) -> None:
    target = SamplingParams(temperature=0.9, top_p=0.95, presence_penalty=0.3, seed=2024)
    others = [
        SamplingParams(),
        SamplingParams(temperature=0.0),
        SamplingParams(seed=7, top_k=4, logprobs=2),
        SamplingParams(temperature=1.5, min_p=0.02, repetition_penalty=1.1),
    ]
    alone = _decode(target, [], 0, device)
    assert len(set(alone)) > 1
    assert _decode(target, others, 0, device) == alone
    assert _decode(target, others, 2, device) == alone
    assert _decode(target, list(reversed(others)), 4, device) == alone


def test_same_seed_different_step_draws_differently() -> None:
    params = SamplingParams(seed=5)
    flat_logits = torch.zeros(1, VOCAB_SIZE)
    tokens = []
    for step in range(20):
        # A preempted, recomputed request rebuilds its metadata from its output length alone.
        row = SamplingRow(params, [1], [0] * step)
        metadata = build_sampling_metadata([row], VOCAB_SIZE, "cpu")
        tokens.append(int(Sampler()(flat_logits, metadata).sampled_token_ids[0]))
        again = build_sampling_metadata([row], VOCAB_SIZE, "cpu")
        assert int(Sampler()(flat_logits, again).sampled_token_ids[0]) == tokens[-1]
    assert len(set(tokens)) > 10


def _frequencies(token_ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    return torch.bincount(token_ids.cpu(), minlength=vocab_size).double() / token_ids.numel()


def test_empirical_distribution_matches_softmax(device: torch.device) -> None:
    logits = torch.tensor([1.0, 0.5, 0.0, -0.5, -1.5])
    num_draws = 4000
    shared = torch.Generator(device=device).manual_seed(0)

    rows = [SamplingRow(SamplingParams(), [], [])] * num_draws
    metadata = build_sampling_metadata(rows, 5, device, shared)
    sampled = Sampler()(logits.expand(num_draws, 5).to(device), metadata).sampled_token_ids
    expected = torch.softmax(logits.double(), dim=-1)
    torch.testing.assert_close(_frequencies(sampled, 5), expected, rtol=0, atol=0.03)

    # Temperature 0.5 and top-k 3: softmax(logits / 0.5) over the three best tokens.
    rows = [SamplingRow(SamplingParams(temperature=0.5, top_k=3), [], [])] * num_draws
    metadata = build_sampling_metadata(rows, 5, device, shared)
    sampled = Sampler()(logits.expand(num_draws, 5).to(device), metadata).sampled_token_ids
    expected = torch.zeros(5, dtype=torch.float64)
    expected[:3] = torch.softmax(logits[:3].double() / 0.5, dim=-1)
    torch.testing.assert_close(_frequencies(sampled, 5), expected, rtol=0, atol=0.03)

    # Per-row generators (one seed per row) follow the same distribution.
    rows = [SamplingRow(SamplingParams(seed=seed), [], []) for seed in range(2000)]
    metadata = build_sampling_metadata(rows, 5, device)
    sampled = Sampler()(logits.expand(2000, 5).to(device), metadata).sampled_token_ids
    expected = torch.softmax(logits.double(), dim=-1)
    torch.testing.assert_close(_frequencies(sampled, 5), expected, rtol=0, atol=0.04)


def test_random_sample_never_picks_masked_tokens(device: torch.device) -> None:
    probs = torch.zeros(3, 8, device=device)
    probs[0, 5] = 1.0
    probs[1, 2] = 0.5
    probs[1, 6] = 0.5
    probs[2] = 1.0 / 8
    shared = torch.Generator(device=device).manual_seed(3)
    for _ in range(20):
        sampled = random_sample(probs, {}, shared).tolist()
        assert sampled[0] == 5 and sampled[1] in (2, 6) and 0 <= sampled[2] < 8


def test_compute_prompt_logprobs(random_logits: torch.Tensor, device: torch.device) -> None:
    targets = torch.tensor([3, 17, 0, 63, 40, 8])
    token_logprobs, ranks, top_ids, top_logprobs = compute_prompt_logprobs(
        random_logits.to(device), targets.to(device), 4
    )
    raw = torch.log_softmax(random_logits.double(), dim=-1)
    assert token_logprobs.shape == (6,) and ranks.shape == (6,)
    assert top_ids.shape == (6, 4) and top_logprobs.shape == (6, 4)
    for position, target in enumerate(targets.tolist()):
        torch.testing.assert_close(
            float(token_logprobs[position]), float(raw[position, target]), rtol=0, atol=1e-5
        )
        assert int(ranks[position]) == 1 + int((raw[position] > raw[position, target]).sum())
        order = torch.argsort(raw[position], descending=True)[:4]
        assert top_ids[position].tolist() == order.tolist()
        torch.testing.assert_close(
            top_logprobs[position].cpu().double(), raw[position, order], rtol=0, atol=1e-5
        )
    _, _, no_ids, no_logprobs = compute_prompt_logprobs(random_logits, targets, 0)
    assert no_ids.shape == (6, 0) and no_logprobs.shape == (6, 0)
