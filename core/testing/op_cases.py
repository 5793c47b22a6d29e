"""The cases `OpConformance` runs: random inputs for one kernel op (`tenon.spec.ops`) at one
shape, and the check of an implementation against `tenon.layers.ops_reference` on them.

Inputs are seeded and never zeros. Each case calls the implementation positionally, as the
layers do, on its own copies, then checks values within the dtype's tolerance and the op's
contract: what may be overwritten, what must be returned, what must stay untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import attrs
import torch

from tenon.layers import ops_reference
from tenon.layers.rotary import RotaryEmbedding

Tolerance = tuple[float, float]  # (atol, rtol)
MAX_POSITION = 1024


@attrs.frozen(kw_only=True)
class OpInputs:
    """The op's positional arguments, and the buffer the tensor ones view (None: their own)."""

    args: tuple[Any, ...]
    storage: torch.Tensor | None = None


class OpCase(Protocol):
    def inputs(self, dtype: torch.dtype, device: torch.device, seed: int) -> OpInputs: ...

    def check(
        self, function: Callable[..., Any], inputs: OpInputs, tolerance: Tolerance
    ) -> None: ...


def random_tensor(
    shape: tuple[int, ...], generator: torch.Generator, *, scale: float = 1.0
) -> torch.Tensor:  # float32 on the CPU: normal values, none exactly zero
    values = torch.randn(shape, generator=generator) * scale
    return torch.where(values == 0, scale, values)


def poison_freed_memory(num_elements: int, dtype: torch.dtype, device: torch.device) -> None:
    """Free a NaN-filled block the size of an output the op will allocate: an allocator that
    reuses it hands the op NaN memory, so an element the op forgets to write fails the check."""
    torch.full((num_elements,), float("nan"), dtype=dtype, device=device)


def assert_matches(actual: Any, expected: torch.Tensor, tolerance: Tolerance, what: str) -> None:
    assert isinstance(actual, torch.Tensor), f"{what}: expected a tensor, got {type(actual)}"
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, (
        f"{what}: must be {list(expected.shape)} {expected.dtype}, got "
        f"{list(actual.shape)} {actual.dtype}"
    )
    atol, rtol = tolerance
    torch.testing.assert_close(
        actual, expected, atol=atol, rtol=rtol, msg=lambda message: f"{what}: {message}"
    )


@attrs.frozen(kw_only=True)
class RmsNormCase:
    num_tokens: int
    hidden_size: int
    with_residual: bool
    scale: float = 1.0  # of x: at 1e-3, mean(x^2) is 1e-6 and eps (1e-5) dominates
    eps: float = 1e-6

    def __str__(self) -> str:
        label = f"tokens{self.num_tokens}-hidden{self.hidden_size}"
        label += "-residual" if self.with_residual else ""
        return label + (f"-scale{self.scale:g}-eps{self.eps:g}" if self.scale != 1.0 else "")

    def inputs(self, dtype: torch.dtype, device: torch.device, seed: int) -> OpInputs:
        generator = torch.Generator().manual_seed(seed)
        shape = (self.num_tokens, self.hidden_size)
        x = random_tensor(shape, generator, scale=self.scale)
        weight = 1.0 + 0.5 * random_tensor((self.hidden_size,), generator)
        residual = random_tensor(shape, generator, scale=self.scale)
        tensors = [t.to(dtype=dtype, device=device) for t in (x, weight, residual)]
        return OpInputs(
            args=(tensors[0], tensors[1], self.eps, tensors[2] if self.with_residual else None)
        )

    def check(self, function: Callable[..., Any], inputs: OpInputs, tolerance: Tolerance) -> None:
        x, weight, eps, residual = inputs.args
        if residual is None:
            expected = ops_reference.rms_norm(x, weight, eps)
            x_before = x.clone()
            poison_freed_memory(x.numel(), x.dtype, x.device)
            output = function(x, weight, eps, None)
            assert_matches(output, expected, tolerance, f"rms_norm {self}")
            assert torch.equal(x, x_before), "rms_norm without a residual must leave x as it was"
            return
        expected, expected_sum = ops_reference.rms_norm(x.clone(), weight, eps, residual.clone())
        result = function(x, weight, eps, residual)
        assert isinstance(result, tuple) and len(result) == 2, (
            f"rms_norm with a residual must return (normed, x + residual), got {type(result)}"
        )
        output, summed = result
        assert_matches(summed, expected_sum, (0.0, 0.0), f"rms_norm {self}: x + residual")
        assert_matches(output, expected, tolerance, f"rms_norm {self}: normed")


@attrs.frozen(kw_only=True)
class SiluAndMulCase:
    num_tokens: int
    intermediate_size: int
    scale: float = 1.0  # of the inputs; at 30 the first gates reach -120 and 120

    def __str__(self) -> str:
        label = f"tokens{self.num_tokens}-intermediate{self.intermediate_size}"
        return label + (f"-scale{self.scale:g}" if self.scale != 1.0 else "")

    def inputs(self, dtype: torch.dtype, device: torch.device, seed: int) -> OpInputs:
        generator = torch.Generator().manual_seed(seed)
        shape = (self.num_tokens, 2 * self.intermediate_size)
        x = random_tensor(shape, generator, scale=self.scale)
        if self.scale != 1.0:  # certain extremes: exp(-gate) overflows, silu(gate) is gate
            x[:, 0], x[:, 1] = -4 * self.scale, 4 * self.scale
        return OpInputs(args=(x.to(dtype=dtype, device=device),))

    def check(self, function: Callable[..., Any], inputs: OpInputs, tolerance: Tolerance) -> None:
        (x,) = inputs.args
        expected = ops_reference.silu_and_mul(x)
        x_before = x.clone()
        poison_freed_memory(expected.numel(), x.dtype, x.device)
        assert_matches(function(x), expected, tolerance, f"silu_and_mul {self}")
        assert torch.equal(x, x_before), "silu_and_mul must leave x as it was"


@attrs.frozen(kw_only=True)
class RotaryCase:
    """`heads` are the key heads of a fused qkv row (layout "qkv": twice as many query heads
    before them, value heads after, so rows are strided) or a packed tensor ("packed")."""

    num_tokens: int
    num_heads: int
    head_size: int
    rotary_dim: int
    layout: str = "qkv"

    def __str__(self) -> str:
        return (
            f"tokens{self.num_tokens}-heads{self.num_heads}-head{self.head_size}"
            f"-rotary{self.rotary_dim}-{self.layout}"
        )

    def heads_of(self, storage: torch.Tensor) -> torch.Tensor:
        """The heads view of a buffer shaped as this case's storage."""
        heads_width = self.num_heads * self.head_size
        if self.layout == "packed":
            return storage
        keys = storage[:, 2 * heads_width : 3 * heads_width]  # [num_tokens, heads_width]
        return keys.view(self.num_tokens, self.num_heads, self.head_size)

    def inputs(self, dtype: torch.dtype, device: torch.device, seed: int) -> OpInputs:
        generator = torch.Generator().manual_seed(seed)
        heads_width = self.num_heads * self.head_size
        if self.layout == "packed":
            shape: tuple[int, ...] = (self.num_tokens, self.num_heads, self.head_size)
        else:  # q (2 * num_heads heads), k, v: [num_tokens, 4 * heads_width]
            shape = (self.num_tokens, 4 * heads_width)
        storage = random_tensor(shape, generator).to(dtype=dtype, device=device)
        # Unsorted, repeated, and both ends of the table.
        positions = torch.randint(0, MAX_POSITION, (self.num_tokens,), generator=generator)
        positions[0] = MAX_POSITION - 1
        if self.num_tokens > 2:
            positions[1], positions[2] = 0, positions[0]
        embedding = RotaryEmbedding(
            self.head_size, self.rotary_dim, MAX_POSITION, 10000.0, None, dtype=dtype, device=device
        )
        args = (
            positions.to(device),
            self.heads_of(storage),
            embedding.cos_cache,
            embedding.signed_sin_cache,
        )
        return OpInputs(args=args, storage=storage)

    def check(self, function: Callable[..., Any], inputs: OpInputs, tolerance: Tolerance) -> None:
        positions, heads, cos_cache, sin_cache = inputs.args
        storage = inputs.storage
        assert storage is not None
        cos = cos_cache.index_select(0, positions)[:, None, :]
        sin = sin_cache.index_select(0, positions)[:, None, :]
        expected = ops_reference.rotate(heads, cos, sin)
        storage_before = storage.clone()
        result = function(positions, heads, cos_cache, sin_cache)
        assert result is heads, "rotary must rotate `heads` in place and return it"
        assert_matches(heads, expected, tolerance, f"rotary {self}")
        rotated = torch.zeros_like(storage, dtype=torch.bool)
        self.heads_of(rotated)[..., : self.rotary_dim] = True  # writes through the view
        assert torch.equal(storage[~rotated], storage_before[~rotated]), (
            "rotary wrote outside the first rotary_dim features of `heads` (the pass-through "
            "features, or the query/value columns of the qkv row around the view)"
        )


LINEAR_LAYOUTS = ("contiguous", "strided_x", "transposed_x", "transposed_weight")


@attrs.frozen(kw_only=True)
class LinearCase:
    """x [num_tokens, in_features] @ weight.T (+ bias). Layouts: "strided_x" views x inside a
    wider row buffer (row stride above in_features); "transposed_x" and "transposed_weight"
    are transposed views of contiguous buffers (column stride above one)."""

    num_tokens: int
    out_features: int
    in_features: int
    with_bias: bool
    layout: str = attrs.field(default="contiguous", validator=attrs.validators.in_(LINEAR_LAYOUTS))

    def __str__(self) -> str:
        label = f"tokens{self.num_tokens}-out{self.out_features}-in{self.in_features}"
        label += "-bias" if self.with_bias else ""
        return label + ("" if self.layout == "contiguous" else f"-{self.layout}")

    def inputs(self, dtype: torch.dtype, device: torch.device, seed: int) -> OpInputs:
        generator = torch.Generator().manual_seed(seed)
        tokens, out_features, in_features = self.num_tokens, self.out_features, self.in_features
        if self.layout == "strided_x":  # x: columns 3 .. 3 + in_features of wider rows
            x = random_tensor((tokens, in_features + 5), generator)[:, 3 : 3 + in_features]
        elif self.layout == "transposed_x":
            x = random_tensor((in_features, tokens), generator).t()
        else:
            x = random_tensor((tokens, in_features), generator)
        # Unit-variance outputs whatever in_features is, so the tolerance means the same.
        weight_scale = in_features**-0.5
        if self.layout == "transposed_weight":
            weight = random_tensor((in_features, out_features), generator, scale=weight_scale).t()
        else:
            weight = random_tensor((out_features, in_features), generator, scale=weight_scale)
        bias = random_tensor((out_features,), generator) if self.with_bias else None
        # .to() keeps the strides of dense layouts only (a transpose, not a slice of wider
        # rows), so each view is rebuilt on its moved buffer.
        return OpInputs(
            args=(_moved_view(x, dtype, device), _moved_view(weight, dtype, device),
                  None if bias is None else bias.to(dtype=dtype, device=device))
        )  # fmt: skip

    def check(self, function: Callable[..., Any], inputs: OpInputs, tolerance: Tolerance) -> None:
        x, weight, bias = inputs.args
        expected = ops_reference.linear(x, weight, bias)
        x_before, weight_before = x.clone(), weight.clone()
        bias_before = None if bias is None else bias.clone()
        poison_freed_memory(expected.numel(), x.dtype, x.device)
        assert_matches(function(x, weight, bias), expected, tolerance, f"linear {self}")
        assert torch.equal(x, x_before), "linear must leave x alone"
        assert torch.equal(weight, weight_before), "linear must leave weight alone"
        if bias is not None:
            assert bias_before is not None and torch.equal(bias, bias_before), (
                "linear must leave bias alone"
            )


def _moved_view(view: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """`view` in `dtype` on `device` with the same strides and offset into a moved buffer."""
    base = view if view._base is None else view._base
    moved = base.to(dtype=dtype, device=device)
    return moved.as_strided(view.shape, view.stride(), view.storage_offset())
