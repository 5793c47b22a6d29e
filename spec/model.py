"""Model architectures: built from an HF config, run one engine step at a time.

An implementation is a `torch.nn.Module` that also subclasses `ModelArchitecture`
(`class MyForCausalLM(torch.nn.Module, ModelArchitecture)`), usually built from `tenon.layers`.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import torch

    from tenon.spec.attention import ForwardContext
    from tenon.spec.quantization import QuantScheme


@attrs.frozen(kw_only=True)
class KVCacheSpec:
    """What the model needs the KV cache to hold, per layer (all layers alike for now).

    `num_components` is 2 for separate K and V; a latent (MLA-style) layout stores 1.
    """

    num_layers: int
    num_kv_heads: int
    head_size: int
    dtype: str
    num_components: int = 2

    def block_bytes(self, block_size: int, element_bytes: int) -> int:
        """Bytes of one block across all layers (the unit the tiers move)."""
        return (
            self.num_layers * self.num_components * block_size * self.num_kv_heads
            * self.head_size * element_bytes
        )


@attrs.frozen(kw_only=True)
class ModelBuildContext:
    """What the model runner passes to `from_config`."""

    dtype: Any  # torch.dtype of weights and activations
    device: Any  # torch.device the model is built on
    quant_scheme: QuantScheme  # applied by tenon.layers' linear layers ("none": plain matmul)


class ModelArchitecture(abc.ABC):
    """One architecture family (for example LlamaForCausalLM).

    Who calls what, when (all by the model runner, in this order):
    1. `from_config(config, build)` once: build modules on `build.device` in `build.dtype`,
       without touching real weights (the loader fills them).
    2. `load_weights(weights)` once: weights arrive as (HF checkpoint name, tensor) pairs in HF's
       layout (loaders undo format quirks such as GGUF's Q/K permutation); return the set of
       parameter names filled, so the runner can report parameters left unset.
    3. `kv_cache_spec()` once, to size and lay out the KV cache.
    4. Every step: `forward(input_ids, positions, context)`, then `compute_logits(hidden)` on the
       rows that sample. Shapes in comments below; `num_tokens` may include padding rows.
    What must hold: forward is a pure function of its inputs and the KV cache (no state kept
    between steps), so batching, chunked prefill and prefix caching give the same results.
    """

    @classmethod
    @abc.abstractmethod
    def from_config(cls, config: Any, build: ModelBuildContext) -> ModelArchitecture:
        """Build the module tree from a `transformers.PretrainedConfig`."""

    @abc.abstractmethod
    def forward(
        self,
        input_ids: torch.Tensor,  # int64 [num_tokens]
        positions: torch.Tensor,  # int64 [num_tokens]
        context: ForwardContext,
    ) -> torch.Tensor:  # hidden states [num_tokens, hidden_size]
        """Run the layers for this step's tokens, writing their K/V into the cache."""

    @abc.abstractmethod
    def compute_logits(
        self, hidden_states: torch.Tensor  # [num_rows, hidden_size]
    ) -> torch.Tensor:  # float32 [num_rows, vocab_size]
        """Project to the vocabulary (the LM head, tied to the embedding where configured)."""

    @abc.abstractmethod
    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        """Copy checkpoint tensors (HF names and layout) into parameters; return names filled."""

    @abc.abstractmethod
    def kv_cache_spec(self) -> KVCacheSpec:
        """The per-layer KV cache this model needs."""
