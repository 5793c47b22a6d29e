"""tenon.layers: the building blocks model plugins are written with.

- `linear`: `MergedLinear`, `Linear` (weights and matmul owned by the quantization scheme) and
  `process_weights_after_loading(model)`;
- `norm`: `RMSNorm` (with a fused residual add); `activation`: `SiluAndMul`;
- `rotary`: `RotaryEmbedding`, `rope_parameters_from_config`;
- `embedding`: `VocabEmbedding`, `LMHead`;
- `attention`: `Attention`, the one class that calls the attention backend;
- `weights`: `default_weight_loader`, `load_param` and the `weight_loader` convention.
"""

from tenon.layers.activation import SiluAndMul
from tenon.layers.attention import Attention
from tenon.layers.embedding import LMHead, VocabEmbedding
from tenon.layers.linear import Linear, MergedLinear, process_weights_after_loading
from tenon.layers.norm import RMSNorm
from tenon.layers.rotary import RotaryEmbedding, rope_parameters_from_config
from tenon.layers.weights import default_weight_loader, load_param, sharded_weight_loader

__all__ = [
    "Attention",
    "LMHead",
    "Linear",
    "MergedLinear",
    "RMSNorm",
    "RotaryEmbedding",
    "SiluAndMul",
    "VocabEmbedding",
    "default_weight_loader",
    "load_param",
    "process_weights_after_loading",
    "rope_parameters_from_config",
    "sharded_weight_loader",
]
