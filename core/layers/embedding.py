"""Token embedding and the LM head (optionally tied to the embedding)."""

from __future__ import annotations

import torch

from tenon.layers import ops, ops_reference
from tenon.layers.weights import sharded_weight_loader


class VocabEmbedding(torch.nn.Module):
    """`weight`: [vocab_size, hidden_size]; looks up one row per token id."""

    def __init__(
        self, vocab_size: int, hidden_size: int, *, dtype: torch.dtype, device: torch.device
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        weight = torch.nn.Parameter(
            torch.empty(vocab_size, hidden_size, dtype=dtype, device=device), requires_grad=False
        )
        weight.weight_loader = sharded_weight_loader([vocab_size])  # type: ignore[attr-defined]
        self.weight = weight

    def forward(
        self,
        input_ids: torch.Tensor,  # int64 [num_tokens]
    ) -> torch.Tensor:  # [num_tokens, hidden_size]
        return torch.nn.functional.embedding(input_ids, self.weight)

    def extra_repr(self) -> str:
        return f"{self.vocab_size}, {self.hidden_size}"


class LMHead(torch.nn.Module):
    """Projects hidden states to float32 vocabulary logits.

    With `tied_to`, `weight` IS the embedding's parameter (the same object, as HF ties them), so
    loading either name fills both; `named_parameters()` then lists it once, under the embedding.
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        *,
        dtype: torch.dtype,
        device: torch.device,
        tied_to: VocabEmbedding | None,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.is_tied = tied_to is not None
        if tied_to is not None:
            if (tied_to.vocab_size, tied_to.hidden_size) != (vocab_size, hidden_size):
                raise ValueError(
                    f"a tied LM head needs an embedding of [{vocab_size}, {hidden_size}], got "
                    f"[{tied_to.vocab_size}, {tied_to.hidden_size}]"
                )
            self.weight = tied_to.weight
            return
        weight = torch.nn.Parameter(
            torch.empty(vocab_size, hidden_size, dtype=dtype, device=device), requires_grad=False
        )
        weight.weight_loader = sharded_weight_loader([vocab_size])  # type: ignore[attr-defined]
        self.weight = weight

    def forward(
        self,
        hidden_states: torch.Tensor,  # [num_rows, hidden_size]
    ) -> torch.Tensor:  # float32 [num_rows, vocab_size]
        # The matmul runs in the model dtype and only the result is upcast, as HF computes
        # logits before `generate` casts them to float32. It goes through the selected linear
        # op like every projection (on an H200 the Triton GEMV reads the 1 GB head 1.16x faster
        # than cuBLAS at one row).
        linear = ops.selected("linear", hidden_states.device.type) or ops_reference.linear
        return linear(hidden_states, self.weight).float()

    def extra_repr(self) -> str:
        return f"{self.vocab_size}, {self.hidden_size}, tied={self.is_tied}"
