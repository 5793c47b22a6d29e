"""Rotary position embedding, GPT-NeoX style (`rotate_half`), as HF Llama, Mistral and Qwen.

Each head's first `rotary_dim` features are split into halves [x1 | x2] and rotated by the angle
`position * inv_freq[i]`:

    out = [x1 | x2] * cos + [-x2 | x1] * sin        (cos, sin: [rotary_dim], both halves equal)

Features past `rotary_dim` pass through unchanged. The cos/sin table is computed once, in
float32, for every position below `max_position`, then cast to the model dtype, so the values
match HF's per-step computation bit for bit.

The sin table is stored with its first half negated, so `rotate_half(x) * sin` is computed as
`roll(x) * signed_sin` with one roll instead of two slices, a negation and a cat; the products
are the same bits, since negation is exact. A model looks cos/sin up once per step
(`cos_sin`) and rotates each layer's query and key heads together (`rotate_heads`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs
import torch

from tenon.layers import ops, ops_reference

SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")


def rope_type_of(rope_scaling: Mapping[str, Any] | None) -> str:
    """The rope type of a scaling dict; accepts HF's `rope_type` key and the legacy `type`."""
    if not rope_scaling:
        return "default"
    return str(rope_scaling.get("rope_type", rope_scaling.get("type", "default")))


def rope_parameters_from_config(hf_config: Any) -> tuple[float, dict[str, Any] | None]:
    """(base, rope_scaling) from an HF config; rope_scaling is None for plain RoPE.

    transformers 5 keeps everything in `config.rope_parameters` (with `rope_theta` and
    `rope_type` inside); older configs have `rope_theta` and `rope_scaling` attributes.
    """
    parameters = getattr(hf_config, "rope_parameters", None)
    if not parameters:
        parameters = getattr(hf_config, "rope_scaling", None) or {}
    if not isinstance(parameters, Mapping):
        raise ValueError(f"rope parameters must be a dict, got {parameters!r}")
    if parameters and all(isinstance(value, Mapping) for value in parameters.values()):
        raise ValueError(
            f"per-layer-type rope parameters are not supported; got keys {sorted(parameters)}"
        )
    base: float | None = parameters.get("rope_theta")
    if base is None:
        base = getattr(hf_config, "rope_theta", None)
    if base is None:
        base = float(getattr(hf_config, "default_theta", 10000.0))
    rope_type = rope_type_of(parameters)
    if rope_type == "default":
        return float(base), None
    rope_scaling = {key: value for key, value in parameters.items() if key != "rope_theta"}
    rope_scaling["rope_type"] = rope_type
    return float(base), rope_scaling


def compute_inv_freq(
    rotary_dim: int, base: float, rope_scaling: Mapping[str, Any] | None, max_position: int
) -> torch.Tensor:  # float32 [rotary_dim // 2]
    """Inverse frequencies, as HF's `ROPE_INIT_FUNCTIONS` compute them for each rope type."""
    rope_type = rope_type_of(rope_scaling)
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise ValueError(
            f"rope type {rope_type!r} is not supported; supported rope types: "
            f"{', '.join(SUPPORTED_ROPE_TYPES)}"
        )
    exponents = torch.arange(0, rotary_dim, 2, dtype=torch.int64).to(torch.float32) / rotary_dim
    inv_freq = 1.0 / (base**exponents)
    if rope_type == "default":
        return inv_freq
    assert rope_scaling is not None
    factor = float(rope_scaling["factor"])
    if rope_type == "linear":
        return inv_freq / factor
    return _llama3_inv_freq(inv_freq, factor, rope_scaling, max_position)


def _llama3_inv_freq(
    inv_freq: torch.Tensor, factor: float, rope_scaling: Mapping[str, Any], max_position: int
) -> torch.Tensor:
    """Llama 3.1: keep high frequencies, divide low ones by `factor`, blend in between."""
    low_freq_factor = float(rope_scaling["low_freq_factor"])
    high_freq_factor = float(rope_scaling["high_freq_factor"])
    old_context_len = rope_scaling.get("original_max_position_embeddings", max_position)

    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (
        high_freq_factor - low_freq_factor
    )
    smoothed = (1 - smooth_factor) * scaled / factor + smooth_factor * scaled
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium_freq, smoothed, scaled)


@attrs.frozen(kw_only=True)
class RotaryStep:
    """One step's rotary inputs: the positions, and their table rows where the torch path runs
    (None where a kernel op reads the tables itself)."""

    positions: torch.Tensor  # int64 [num_tokens]
    cos: torch.Tensor | None  # [num_tokens, 1, rotary_dim]
    sin: torch.Tensor | None  # [num_tokens, 1, rotary_dim], first half negated


class RotaryEmbedding(torch.nn.Module):
    """Applies RoPE to flattened query and key rows at the given positions."""

    def __init__(
        self,
        head_size: int,
        rotary_dim: int,
        max_position: int,
        base: float,
        rope_scaling: Mapping[str, Any] | None,
        *,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        super().__init__()
        if rotary_dim > head_size or rotary_dim % 2 != 0:
            raise ValueError(
                f"rotary_dim must be even and at most head_size ({head_size}), got {rotary_dim}"
            )
        self.head_size = head_size
        self.rotary_dim = rotary_dim
        self.max_position = max_position
        inv_freq = compute_inv_freq(rotary_dim, base, rope_scaling, max_position)
        positions = torch.arange(max_position, dtype=torch.int64).to(torch.float32)
        # freqs: float32 [max_position, rotary_dim // 2]
        freqs = positions[:, None] * inv_freq[None, :]
        angles = torch.cat((freqs, freqs), dim=-1)  # [max_position, rotary_dim]
        signed_sin = torch.cat((-freqs.sin(), freqs.sin()), dim=-1)  # [max_position, rotary_dim]
        self.cos_cache: torch.Tensor
        self.signed_sin_cache: torch.Tensor
        self.register_buffer("cos_cache", angles.cos().to(dtype=dtype, device=device), False)
        self.register_buffer("signed_sin_cache", signed_sin.to(dtype=dtype, device=device), False)

    def forward(
        self,
        positions: torch.Tensor,  # int64 [num_tokens], each below max_position
        query: torch.Tensor,  # [num_tokens, num_heads * head_size]
        key: torch.Tensor,  # [num_tokens, num_kv_heads * head_size]
    ) -> tuple[torch.Tensor, torch.Tensor]:  # same shapes as query, key
        step = self.step(positions)
        num_tokens = query.shape[0]
        rotated_query = self.rotate(step, query.reshape(num_tokens, -1, self.head_size).clone())
        rotated_key = self.rotate(step, key.reshape(num_tokens, -1, self.head_size).clone())
        return rotated_query.reshape(query.shape), rotated_key.reshape(key.shape)

    def step(self, positions: torch.Tensor) -> RotaryStep:
        """What every layer's rotation needs this step, looked up once per step."""
        if ops.selected("rotary", positions.device.type) is not None:
            return RotaryStep(positions=positions, cos=None, sin=None)
        cos, sin = self.cos_sin(positions)
        return RotaryStep(positions=positions, cos=cos, sin=sin)

    def rotate(
        self,
        step: RotaryStep,
        heads: torch.Tensor,  # [num_tokens, num_heads, head_size]
    ) -> torch.Tensor:  # [num_tokens, num_heads, head_size]
        """The rotated heads: `heads` itself (rotated in place) where a kernel op is selected,
        else a new tensor."""
        kernel = ops.selected("rotary", heads.device.type)
        if kernel is not None:
            result: torch.Tensor = kernel(step.positions, heads, self.cos_cache, self.signed_sin_cache)
            return result
        assert step.cos is not None and step.sin is not None
        return ops_reference.rotate(heads, step.cos, step.sin)

    def cos_sin(
        self,
        positions: torch.Tensor,  # int64 [num_tokens], each below max_position
    ) -> tuple[torch.Tensor, torch.Tensor]:  # cos, signed sin: [num_tokens, 1, rotary_dim]
        """The table rows of `positions`, shaped to broadcast over heads."""
        cos = self.cos_cache.index_select(0, positions)
        sin = self.signed_sin_cache.index_select(0, positions)
        return cos[:, None, :], sin[:, None, :]

    def rotate_heads(
        self,
        heads: torch.Tensor,  # [num_tokens, num_heads, head_size]
        cos: torch.Tensor,  # [num_tokens, 1, rotary_dim], from `cos_sin`
        sin: torch.Tensor,  # [num_tokens, 1, rotary_dim], from `cos_sin`
    ) -> torch.Tensor:  # [num_tokens, num_heads, head_size], a new tensor
        return ops_reference.rotate(heads, cos, sin)

    def extra_repr(self) -> str:
        return (
            f"head_size={self.head_size}, rotary_dim={self.rotary_dim}, "
            f"max_position={self.max_position}"
        )
