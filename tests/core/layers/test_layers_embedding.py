"""Embedding lookup, the LM head (tied and untied), and default weight loading."""

from __future__ import annotations

import pytest
import torch

from tenon.layers import LMHead, VocabEmbedding, default_weight_loader, load_param

CPU = torch.device("cpu")


def test_embedding_loads_and_looks_up_rows() -> None:
    torch.manual_seed(0)
    table = torch.randn(11, 6)
    embedding = VocabEmbedding(11, 6, dtype=torch.float32, device=CPU)
    load_param(dict(embedding.named_parameters()), "weight", table)
    ids = torch.tensor([3, 0, 10, 3])
    assert torch.equal(embedding(ids), table[ids])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_tied_lm_head_shares_the_embedding_weight(dtype: torch.dtype) -> None:
    torch.manual_seed(1)
    embedding = VocabEmbedding(11, 6, dtype=dtype, device=CPU)
    head = LMHead(11, 6, dtype=dtype, device=CPU, tied_to=embedding)
    table = torch.randn(11, 6)
    load_param(dict(embedding.named_parameters()), "weight", table)
    assert head.weight is embedding.weight

    hidden = torch.randn(3, 6).to(dtype)
    logits = head(hidden)
    assert logits.dtype == torch.float32
    # The matmul runs in the model dtype; only the result is upcast.
    assert torch.equal(logits, (hidden @ table.to(dtype).T).float())


def test_untied_lm_head_has_its_own_weight() -> None:
    torch.manual_seed(2)
    embedding = VocabEmbedding(7, 4, dtype=torch.float32, device=CPU)
    head = LMHead(7, 4, dtype=torch.float32, device=CPU, tied_to=None)
    assert head.weight is not embedding.weight
    weight = torch.randn(7, 4)
    load_param(dict(head.named_parameters()), "weight", weight)
    hidden = torch.randn(2, 4)
    assert torch.equal(head(hidden), hidden @ weight.T)


def test_tied_lm_head_checks_shapes() -> None:
    embedding = VocabEmbedding(7, 4, dtype=torch.float32, device=CPU)
    with pytest.raises(ValueError, match=r"\[8, 4\].*\[7, 4\]"):
        LMHead(8, 4, dtype=torch.float32, device=CPU, tied_to=embedding)


def test_default_weight_loader_names_both_shapes() -> None:
    param = torch.nn.Parameter(torch.zeros(3, 2), requires_grad=False)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        default_weight_loader(param, torch.ones(2, 3))
    default_weight_loader(param, torch.arange(6.0).view(3, 2))
    assert torch.equal(param, torch.arange(6.0).view(3, 2))
    with pytest.raises(ValueError, match="not fused"):
        load_param({"norm.weight": param}, "norm.weight", torch.ones(3, 2), shard_index=0)


def test_lm_head_runs_the_selected_linear_op(monkeypatch: pytest.MonkeyPatch) -> None:
    """Logits go through the linear op the engine installed (the Triton GEMV on GPUs), then are
    upcast; without one, torch's linear."""
    from tenon.layers import ops

    head = LMHead(9, 4, dtype=torch.float16, device=CPU, tied_to=None)
    torch.manual_seed(3)
    head.weight.data.copy_(torch.randn(9, 4))
    hidden = torch.randn(3, 4).half()
    expected = torch.nn.functional.linear(hidden, head.weight).float()
    torch.testing.assert_close(head(hidden), expected, rtol=0, atol=0)
    calls = []

    def doubled(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        calls.append((tuple(x.shape), tuple(weight.shape)))
        return torch.nn.functional.linear(x, weight) * 2

    monkeypatch.setattr(ops, "selected", lambda op, device_type: doubled if op == "linear" else None)
    logits = head(hidden)
    assert calls == [((3, 4), (9, 4))] and logits.dtype == torch.float32
    torch.testing.assert_close(logits, expected * 2, rtol=0, atol=0)
