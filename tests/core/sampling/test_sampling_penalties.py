from __future__ import annotations

from collections import Counter

import torch

from tenon.sampling import (
    SamplingParams,
    SamplingRow,
    apply_penalties,
    build_sampling_metadata,
    count_token_ids,
)

VOCAB_SIZE = 64


def _reference_penalties(logits: torch.Tensor, rows: list[SamplingRow]) -> torch.Tensor:
    """Plain per-row, per-token loop of the HF/vLLM rules."""
    result = logits.clone()
    for row_index, row in enumerate(rows):
        params = row.params
        output_counts = Counter(row.output_token_ids)
        seen = set(row.prompt_token_ids) | set(row.output_token_ids)
        for token_id in range(VOCAB_SIZE):
            value = float(result[row_index, token_id])
            if token_id in seen:
                if value > 0:
                    value /= params.repetition_penalty
                else:
                    value *= params.repetition_penalty
            count = output_counts[token_id]
            value -= params.frequency_penalty * count
            value -= params.presence_penalty * (1.0 if count > 0 else 0.0)
            result[row_index, token_id] = value
    return result


def _rows() -> list[SamplingRow]:
    generator = torch.Generator().manual_seed(7)

    def ids(length: int) -> list[int]:
        # Few distinct values so repeats (count > 1) are common.
        return torch.randint(0, 20, (length,), generator=generator).tolist()

    return [
        SamplingRow(SamplingParams(repetition_penalty=1.5), ids(6), ids(5)),
        SamplingRow(SamplingParams(presence_penalty=0.8), ids(4), ids(9)),
        SamplingRow(SamplingParams(frequency_penalty=0.4), ids(3), ids(7)),
        SamplingRow(SamplingParams(), ids(5), ids(2)),
        SamplingRow(
            SamplingParams(repetition_penalty=0.7, presence_penalty=-1.0, frequency_penalty=1.5),
            ids(8),
            ids(6),
        ),
        SamplingRow(SamplingParams(repetition_penalty=2.0, frequency_penalty=0.3), [], []),
    ]


def test_count_token_ids_matches_counter() -> None:
    token_ids = torch.tensor([[3, 3, 5, VOCAB_SIZE], [VOCAB_SIZE, VOCAB_SIZE, 0, 63]])
    counts = count_token_ids(token_ids, VOCAB_SIZE)
    assert counts.shape == (2, VOCAB_SIZE)
    for row_index, row in enumerate(token_ids.tolist()):
        expected = Counter(token_id for token_id in row if token_id != VOCAB_SIZE)
        assert counts[row_index].tolist() == [expected[i] for i in range(VOCAB_SIZE)]


def test_penalties_match_reference(random_logits: torch.Tensor, device: torch.device) -> None:
    rows = _rows()
    metadata = build_sampling_metadata(rows, VOCAB_SIZE, device)
    assert metadata.output_token_ids is not None
    logits = random_logits.to(device)
    before = logits.clone()
    penalised = apply_penalties(
        logits,
        metadata.prompt_token_ids,
        metadata.output_token_ids,
        metadata.presence_penalties,
        metadata.frequency_penalties,
        metadata.repetition_penalties,
    )
    expected = _reference_penalties(random_logits, rows)
    torch.testing.assert_close(penalised.cpu(), expected, rtol=1e-6, atol=1e-6)
    assert torch.equal(logits, before)
    # Rows 3 (no penalties) and 5 (nothing seen yet) are untouched; the others changed.
    assert torch.equal(penalised[3].cpu(), random_logits[3])
    assert torch.equal(penalised[5].cpu(), random_logits[5])
    for row_index in (0, 1, 2, 4):
        assert not torch.equal(penalised[row_index].cpu(), random_logits[row_index])


def test_presence_and_frequency_ignore_prompt_tokens(random_logits: torch.Tensor) -> None:
    rows = [SamplingRow(SamplingParams(presence_penalty=2.0, frequency_penalty=2.0), [10, 11], [12])]
    metadata = build_sampling_metadata(rows, VOCAB_SIZE, "cpu")
    assert metadata.prompt_token_ids is None and metadata.output_token_ids is not None
    penalised = apply_penalties(
        random_logits[:1], None, metadata.output_token_ids, metadata.presence_penalties,
        metadata.frequency_penalties, metadata.repetition_penalties,
    )
    expected = random_logits[:1].clone()
    expected[0, 12] -= 4.0
    torch.testing.assert_close(penalised, expected, rtol=0, atol=1e-6)
