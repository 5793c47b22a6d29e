"""The kit on Tenon's torch ops (which pass it by construction), and on wrong ops, which must
fail exactly the checks meant to catch them."""

from __future__ import annotations

import torch

from tenon.layers import ops_reference
from tenon.plugins.ops import registration
from tenon.testing import OpConformance, run_conformance
from tenon.testing.op_cases import LinearCase, RotaryCase
from tenon.testing.op_conformance import CASES

REFERENCE_SPECS = {spec.capabilities.op: spec for spec in registration.tenon_ops()}
DTYPES = ("float32", "float16")


class TestReferenceRmsNorm(OpConformance):
    spec = REFERENCE_SPECS["rms_norm"]
    dtypes = DTYPES


class TestReferenceSiluAndMul(OpConformance):
    spec = REFERENCE_SPECS["silu_and_mul"]
    dtypes = DTYPES


class TestReferenceRotary(OpConformance):
    spec = REFERENCE_SPECS["rotary"]
    dtypes = DTYPES


class TestReferenceLinear(OpConformance):
    spec = REFERENCE_SPECS["linear"]
    dtypes = DTYPES


class TestReferenceRmsNormLinear(OpConformance):
    spec = REFERENCE_SPECS["rms_norm_linear"]
    dtypes = DTYPES


class TestReferenceSiluAndMulLinear(OpConformance):
    spec = REFERENCE_SPECS["silu_and_mul_linear"]
    dtypes = DTYPES


def case_names(labels: list[str]) -> set[str]:
    """The test_matches_reference names of these case labels, in every dtype."""
    return {f"test_matches_reference[{dtype}-{label}]" for dtype in DTYPES for label in labels}


def failed_names(suite: type[OpConformance]) -> set[str]:
    return set(failures(suite))


def failures(suite: type[OpConformance]) -> dict[str, str]:
    """Failed check -> its detail; the suite must also pass some checks (it ran)."""
    report = run_conformance(suite, check=False)
    assert report.names("passed"), report.summary()
    return {result.name: result.detail for result in report.failed}


def rms_norm_ignoring_eps(
    x: torch.Tensor,
    weight: torch.Tensor,
    eps: float,
    residual: torch.Tensor | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    return ops_reference.rms_norm(x, weight, 1e-6, residual)


def test_kit_catches_an_rms_norm_that_ignores_eps() -> None:
    class Suite(OpConformance):
        op, function, dtypes = "rms_norm", rms_norm_ignoring_eps, DTYPES

    # Only inputs small enough that eps (1e-5 there) outweighs mean(x^2) tell.
    assert failed_names(Suite) == case_names(["tokens5-hidden96-residual-scale0.001-eps1e-05"])


def rms_norm_with_a_float32_sum(
    x: torch.Tensor,
    weight: torch.Tensor,
    eps: float,
    residual: torch.Tensor | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    if residual is None:
        return ops_reference.rms_norm(x, weight, eps)
    summed = x.float() + residual.float()  # never rounded to the activation dtype
    return ops_reference.rms_norm(summed, weight, eps).to(x.dtype), summed


def test_kit_catches_a_residual_sum_left_in_float32() -> None:
    class Suite(OpConformance):
        op, function, dtypes = "rms_norm", rms_norm_with_a_float32_sum, DTYPES

    residual_cases = [str(case) for case in CASES["rms_norm"] if "residual" in str(case)]
    expected = {f"test_matches_reference[float16-{label}]" for label in residual_cases}
    assert failed_names(Suite) == expected | {"test_layers_give_the_reference_results[float16]"}


def silu_and_mul_swapped(x: torch.Tensor) -> torch.Tensor:
    gate, up = x.chunk(2, dim=-1)
    return torch.nn.functional.silu(up) * gate


def test_kit_catches_gate_and_up_swapped() -> None:
    class Suite(OpConformance):
        op, function, dtypes = "silu_and_mul", silu_and_mul_swapped, DTYPES

    labels = [str(case) for case in CASES["silu_and_mul"]]
    assert failed_names(Suite) == case_names(labels) | {
        f"test_layers_give_the_reference_results[{dtype}]" for dtype in DTYPES
    }


def rotary_out_of_place(
    positions: torch.Tensor,
    heads: torch.Tensor,
    cos_cache: torch.Tensor,
    signed_sin_cache: torch.Tensor,
) -> torch.Tensor:
    return ops_reference.rotary(positions, heads.clone(), cos_cache, signed_sin_cache)


def test_kit_catches_a_rotary_that_is_not_in_place() -> None:
    class Suite(OpConformance):
        op, function, dtypes = "rotary", rotary_out_of_place, DTYPES

    # The layers use the returned tensor, so only the op's own contract check tells.
    labels = [str(case) for case in CASES["rotary"]]
    failed = failures(Suite)
    assert set(failed) == case_names(labels)
    assert all("rotary must rotate `heads` in place" in detail for detail in failed.values())


def rotary_of_every_feature(
    positions: torch.Tensor,
    heads: torch.Tensor,
    cos_cache: torch.Tensor,
    signed_sin_cache: torch.Tensor,
) -> torch.Tensor:
    """Rotates partial heads as if rotary_dim were head_size (a common porting slip)."""
    head_size, rotary_dim = heads.shape[-1], cos_cache.shape[-1]
    if rotary_dim == head_size:
        return ops_reference.rotary(positions, heads, cos_cache, signed_sin_cache)
    repeats = head_size // rotary_dim
    cos, sin = (table.repeat_interleave(repeats, dim=-1) for table in (cos_cache, signed_sin_cache))
    return ops_reference.rotary(positions, heads, cos, sin)


def test_kit_catches_a_rotary_that_ignores_rotary_dim() -> None:
    class Suite(OpConformance):
        op, function, dtypes = "rotary", rotary_of_every_feature, DTYPES

    partial = [
        str(case)
        for case in CASES["rotary"]
        if isinstance(case, RotaryCase) and case.rotary_dim < case.head_size
    ]
    assert failed_names(Suite) == case_names(partial) | {
        f"test_layers_give_the_reference_results[{dtype}]" for dtype in DTYPES
    }


def test_kit_catches_a_signature_off_the_convention() -> None:
    def silu_and_mul(hidden: torch.Tensor) -> torch.Tensor:
        return ops_reference.silu_and_mul(hidden)

    class Suite(OpConformance):
        op, function, dtypes = "silu_and_mul", silu_and_mul, DTYPES

    assert failed_names(Suite) == {"test_signature_is_the_convention"}


def linear_without_bias(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    return ops_reference.linear(x, weight, None)


def test_kit_catches_a_linear_that_drops_the_bias() -> None:
    class Suite(OpConformance):
        op, function, dtypes = "linear", linear_without_bias, DTYPES

    with_bias = [str(case) for case in CASES["linear"] if "bias" in str(case)]
    assert failed_names(Suite) == case_names(with_bias) | {
        f"test_layers_give_the_reference_results[{dtype}]" for dtype in DTYPES
    }


def linear_ignoring_weight_strides(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """Reads the weight's buffer as if its rows were contiguous (a kernel that takes only
    weight.stride(0))."""
    packed = weight.as_strided(weight.shape, (weight.shape[1], 1), weight.storage_offset())
    return ops_reference.linear(x, packed, bias)


def test_kit_catches_a_linear_that_ignores_a_transposed_weight() -> None:
    class Suite(OpConformance):
        op, function, dtypes = "linear", linear_ignoring_weight_strides, DTYPES

    transposed = [
        str(case)
        for case in CASES["linear"]
        if isinstance(case, LinearCase) and case.layout == "transposed_weight"
    ]
    assert transposed and failed_names(Suite) == case_names(transposed)


def linear_into_x(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """Scales x in place before the product: right values on a copy, x changed."""
    out = ops_reference.linear(x.clone(), weight, bias)
    x.mul_(2)
    return out


def test_kit_catches_a_linear_that_writes_its_input() -> None:
    class Suite(OpConformance):
        op, function, dtypes = "linear", linear_into_x, DTYPES

    # In the layers o_proj reads a view of qkv's output, which the doubling then corrupts.
    layers = {f"test_layers_give_the_reference_results[{dtype}]" for dtype in DTYPES}
    failed = failures(Suite)
    cases = case_names([str(case) for case in CASES["linear"]])
    assert set(failed) == cases | layers
    assert all("linear must leave x alone" in failed[name] for name in cases)
