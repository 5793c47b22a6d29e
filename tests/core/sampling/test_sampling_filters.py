from __future__ import annotations

import pytest
import torch

from tenon.sampling import apply_min_p, apply_temperature, apply_top_k, apply_top_k_top_p

NEG_INF = float("-inf")


def _reference_top_k(row: torch.Tensor, k: int) -> torch.Tensor:
    if k == 0 or k >= row.numel():
        return row.clone()
    kth_value = sorted(row.tolist(), reverse=True)[k - 1]
    return torch.where(row >= kth_value, row, NEG_INF)


def _reference_top_p(row: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest prefix (most likely first) whose probability reaches p."""
    if p >= 1.0:
        return row.clone()
    probs = torch.softmax(row.double(), dim=-1).tolist()
    order = sorted(range(row.numel()), key=lambda token_id: -probs[token_id])
    kept: set[int] = set()
    total = 0.0
    for token_id in order:
        kept.add(token_id)
        total += probs[token_id]
        if total >= p:
            break
    return torch.tensor([value if i in kept else NEG_INF for i, value in enumerate(row.tolist())])


def _reference_min_p(row: torch.Tensor, min_p: float) -> torch.Tensor:
    probs = torch.softmax(row.double(), dim=-1)
    threshold = float(probs.max()) * min_p
    return torch.where(probs < threshold, NEG_INF, row)


TOP_KS = [0, 1, 5, 17, 64, 100]
TOP_PS = [1.0, 0.9, 0.5, 0.05, 0.75, 0.99]


def test_temperature_per_row(random_logits: torch.Tensor) -> None:
    temperature = torch.tensor([1.0, 0.5, 2.0, 0.0, 1e-6, 0.25])
    scaled = apply_temperature(random_logits, temperature)
    for row_index, value in enumerate(temperature.tolist()):
        divisor = 1.0 if value < 1e-5 else value
        torch.testing.assert_close(scaled[row_index], random_logits[row_index] / divisor)


def test_min_p_per_row(random_logits: torch.Tensor, device: torch.device) -> None:
    min_p = [0.0, 0.01, 0.1, 0.3, 1.0, 0.05]
    filtered = apply_min_p(random_logits.to(device), torch.tensor(min_p, device=device)).cpu()
    for row_index, value in enumerate(min_p):
        expected = _reference_min_p(random_logits[row_index], value)
        assert torch.equal(filtered[row_index], expected)
    assert torch.isfinite(filtered[0]).all()
    # min_p = 1 keeps only the top token.
    assert int(torch.isfinite(filtered[4]).sum()) == 1


@pytest.mark.parametrize("max_top_k_known", [False, True])
def test_top_k_per_row(
    random_logits: torch.Tensor, device: torch.device, max_top_k_known: bool
) -> None:
    top_k = torch.tensor(TOP_KS, dtype=torch.int32, device=device)
    max_top_k = 64 if max_top_k_known else None
    filtered = apply_top_k(random_logits.to(device), top_k, max_top_k).cpu()
    for row_index, k in enumerate(TOP_KS):
        assert torch.equal(filtered[row_index], _reference_top_k(random_logits[row_index], k))
    assert [int(torch.isfinite(row).sum()) for row in filtered] == [64, 1, 5, 17, 64, 64]


def test_top_p_per_row(random_logits: torch.Tensor, device: torch.device) -> None:
    top_p = torch.tensor(TOP_PS, device=device)
    filtered = apply_top_k_top_p(random_logits.to(device), None, top_p).cpu()
    for row_index, p in enumerate(TOP_PS):
        assert torch.equal(filtered[row_index], _reference_top_p(random_logits[row_index], p))
    num_kept = [int(torch.isfinite(row).sum()) for row in filtered]
    assert num_kept[0] == 64
    assert num_kept[3] >= 1
    assert all(1 <= kept < 64 for kept in num_kept[1:])


def test_top_k_then_top_p(random_logits: torch.Tensor, device: torch.device) -> None:
    top_k = torch.tensor(TOP_KS, dtype=torch.int32, device=device)
    top_p = torch.tensor(TOP_PS, device=device)
    logits = random_logits.to(device)
    before = logits.clone()
    filtered = apply_top_k_top_p(logits, top_k, top_p).cpu()
    for row_index, (k, p) in enumerate(zip(TOP_KS, TOP_PS, strict=True)):
        # Top-p runs on the distribution renormalised over the top-k survivors.
        expected = _reference_top_p(_reference_top_k(random_logits[row_index], k), p)
        assert torch.equal(filtered[row_index], expected)
    assert torch.equal(logits, before)


@pytest.mark.parametrize("num_candidates", [17, 64, 500])
def test_top_p_among_top_k_candidates_matches_full_sort(
    random_logits: torch.Tensor, device: torch.device, num_candidates: int
) -> None:
    # Every row uses top-k, so top-p may look at only the num_candidates best tokens.
    top_ks = [3, 1, 17, 10, 16, 5]
    top_k = torch.tensor(top_ks, dtype=torch.int32, device=device)
    top_p = torch.tensor(TOP_PS, device=device)
    logits = random_logits.to(device)
    fast = apply_top_k_top_p(logits, top_k, top_p, num_candidates=num_candidates).cpu()
    full = apply_top_k_top_p(logits, top_k, top_p).cpu()
    assert torch.equal(fast, full)
    for row_index, (k, p) in enumerate(zip(top_ks, TOP_PS, strict=True)):
        expected = _reference_top_p(_reference_top_k(random_logits[row_index], k), p)
        assert torch.equal(fast[row_index], expected)


def test_ties_at_the_cutoff_are_all_kept(device: torch.device) -> None:
    # Tokens 1, 2 and 4 tie. In row 0 top-p 0.75 is reached after the first of them (mass
    # 0.68 + 0.09 over the full vocabulary, 0.71 + 0.10 under top-k 4); in row 1 top-k 2 cuts
    # through the tie. Either way all three stay.
    logits = torch.tensor([[3.0, 1.0, 1.0, -2.0, 1.0, 0.0]] * 2, device=device)
    top_p = torch.tensor([0.75, 1.0], device=device)
    for top_ks, num_candidates in (([0, 2], None), ([4, 2], None), ([4, 2], 4)):
        top_k = torch.tensor(top_ks, dtype=torch.int32, device=device)
        filtered = apply_top_k_top_p(logits, top_k, top_p, num_candidates=num_candidates).cpu()
        kept = [torch.isfinite(row).nonzero().flatten().tolist() for row in filtered]
        assert kept == [[0, 1, 2, 4], [0, 1, 2, 4]]


def test_top_k_top_p_with_neither_is_identity(random_logits: torch.Tensor) -> None:
    result = apply_top_k_top_p(random_logits, None, None)
    assert torch.equal(result, random_logits)
    assert result is not random_logits
