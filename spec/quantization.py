"""Quantization schemes: how linear layers store and apply their weights.

`tenon.layers` linear layers never multiply by a weight themselves: they ask the model's
`QuantScheme` for a `LinearMethod` at build time and delegate both parameter creation and the
matmul to it. Unquantized models run through the built-in "none" scheme.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import torch


class LinearMethod(abc.ABC):
    """Owns a linear layer's parameters and its forward computation.

    Called by `tenon.layers` linear layers: `create_weights` once while the model is built,
    `process_weights_after_loading` once after the loader filled the parameters (repack,
    transpose, compute scales), then `apply` in every forward.
    """

    # True when `layer.weight` is a plain [out_features, in_features] matrix in the activation
    # dtype and `apply` is x @ weight.T (+ bias): fused kernel ops (a norm or an activation with
    # the matmul after it, `tenon.spec.ops`) may then read the weight themselves. Quantized
    # methods keep the default.
    dense_weight: ClassVar[bool] = False

    @abc.abstractmethod
    def create_weights(
        self,
        layer: torch.nn.Module,
        input_size: int,
        output_sizes: Sequence[int],  # one entry per fused projection (q, k, v or gate, up)
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        """Register the layer's parameters on `layer`. Each parameter gets a `weight_loader`
        attribute: `weight_loader(param, loaded, shard_index)` copies a checkpoint tensor for
        shard `shard_index` (None: the whole fused parameter) into place."""

    def process_weights_after_loading(self, layer: torch.nn.Module) -> None:  # noqa: B027
        """Post-process loaded parameters; default: nothing."""

    @abc.abstractmethod
    def apply(
        self,
        layer: torch.nn.Module,
        x: torch.Tensor,  # [num_tokens, input_size]
        bias: torch.Tensor | None,  # [sum(output_sizes)]
    ) -> torch.Tensor:  # [num_tokens, sum(output_sizes)]
        """y = x @ W.T (+ bias), however W is stored."""


class QuantScheme(abc.ABC):
    """One per model. Selected by the checkpoint's `quantization_config["quant_method"]`
    (or `--quantization`) against `capabilities.methods`."""

    @classmethod
    @abc.abstractmethod
    def from_config(cls, quant_config: Mapping[str, Any] | None) -> QuantScheme:
        """Build from the checkpoint's quantization config (None for unquantized)."""

    @abc.abstractmethod
    def linear_method(self, layer_name: str) -> LinearMethod:
        """The method for the linear layer at `layer_name` (dotted module path)."""
