"""`--load-format dummy`: a model's real shapes filled with seeded random values.

For benchmarks and tests that need the compute of a model but not its answers. Each parameter
gets its own generator seeded from its name, so values do not depend on iteration order, and
the generator lives on the parameter's device, so nothing is copied across devices.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

from tenon.plugins.loaders.directory_tokenizer import load_directory_tokenizer
from tenon.plugins.loaders.safetensors_loader import load_hf_config
from tenon.spec.loader import ModelLoader, ModelSource
from tenon.spec.model import ModelArchitecture

DUMMY_SEED = 1234
DUMMY_HALF_RANGE = 0.05  # weights and biases: uniform in [-0.05, 0.05]
DUMMY_NORM_HALF_RANGE = 0.05  # norm scales: uniform in [0.95, 1.05], so activations stay sane


def is_norm_weight(name: str, num_dims: int) -> bool:
    return num_dims == 1 and "norm" in name.lower()


def parameter_seed(name: str, seed: int = DUMMY_SEED) -> int:
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63)


def fill_dummy_weights(model: Any, seed: int = DUMMY_SEED) -> None:
    """Overwrite every floating-point parameter of `model` in place."""
    import torch

    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if not parameter.is_floating_point() or parameter.device.type == "meta":
                continue
            generator = torch.Generator(device=parameter.device)
            generator.manual_seed(parameter_seed(name, seed))
            if is_norm_weight(name, parameter.dim()):
                low, high = 1.0 - DUMMY_NORM_HALF_RANGE, 1.0 + DUMMY_NORM_HALF_RANGE
            else:
                low, high = -DUMMY_HALF_RANGE, DUMMY_HALF_RANGE
            parameter.uniform_(low, high, generator=generator)


class DummyLoader(ModelLoader):
    def can_load(self, source: ModelSource) -> bool:
        return False  # only when asked for by name: random weights must never be a surprise

    def load_config(self, source: ModelSource) -> Any:
        return load_hf_config(source.path)

    def load_weights(self, model: ModelArchitecture, source: ModelSource, config: Any) -> None:
        fill_dummy_weights(model)

    def load_tokenizer(self, source: ModelSource) -> Any | None:
        directory = source.path if source.path.is_dir() else Path(source.path).parent
        return load_directory_tokenizer(directory)
