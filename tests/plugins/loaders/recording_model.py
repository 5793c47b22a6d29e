"""A stand-in model for loader tests: plain parameters at HF names, recording what it receives."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


class RecordingModel(nn.Module):
    """Parameters at the given dotted names; `load_weights` copies in and records what came.

    Names it has no parameter for (a tied LM head, say) are recorded but not reported filled.
    """

    def __init__(self, shapes: dict[str, tuple[int, ...]], dtype: torch.dtype = torch.float32):
        super().__init__()
        for name, shape in shapes.items():
            module_path, _, parameter_name = name.rpartition(".")
            module: nn.Module = self
            for part in module_path.split(".") if module_path else []:
                if not hasattr(module, part):
                    module.add_module(part, nn.Module())
                module = getattr(module, part)
            module.register_parameter(parameter_name, nn.Parameter(torch.empty(shape, dtype=dtype)))
        self.received: dict[str, torch.Tensor] = {}

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        parameters = dict(self.named_parameters())
        filled_names: set[str] = set()
        for name, tensor in weights:
            self.received[name] = tensor
            if name in parameters:
                with torch.no_grad():
                    parameters[name].copy_(tensor)
                filled_names.add(name)
        return filled_names
