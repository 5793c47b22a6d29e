"""The GEMVs with RMSNorm or SiLU-and-mul fused into their prologue, in Triton's interpreter on
CPU tensors: float16 and float32 (bfloat16 runs on the GPU, test_gemv_fused_on_cuda.py).

Tolerances are rounding bounds, not guesses. The reference is exact (float64); with
S = sum_k |W[n, k] * a_k| (a the fused prologue's exact output) and u the activation dtype's
unit roundoff (2^-11 float16, 2^-24 float32):
- the fused rms_norm GEMV rounds once at the end: |out - exact| <= u |exact| + float32
  products and accumulation, bounded by K * 2^-24 * S (the worst case for any summation order);
- the unfused chain (and the SiLU prologue, by design) also rounds each a_k twice to the
  activation dtype, adding up to about 2u S.
"""

from __future__ import annotations

import os

import pytest
import torch

from tenon.layers import ops_reference
from tenon.plugins.ops.triton_kernels.gemv import GemvConfig, gemv
from tenon.plugins.ops.triton_kernels.gemv_fused import gemv_rms_norm, gemv_silu_and_mul
from tenon.plugins.ops.triton_kernels.rms_norm import rms_norm
from tenon.plugins.ops.triton_kernels.silu_and_mul import silu_and_mul

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1",
    reason="the CPU tests run the kernels in Triton's interpreter (TRITON_INTERPRET=1)",
)

EPS = 1e-5
# Small blocks, so tiny shapes still take several programs and steps. (out, in) pairs below
# are ragged for both: 100 % 8, 100 % 16 and 200 % 64, 200 % 32 are not 0; 192 % 64 is.
LAUNCHES = (
    GemvConfig(kernel="fma", block_n=8, block_k=64),
    GemvConfig(kernel="fma", block_n=16, block_k=32, num_warps=2, num_stages=1),
)
SHAPES = ((100, 200), (36, 192))


def unit_roundoff(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps / 2


def assert_within(
    result: torch.Tensor,  # [1, N]
    exact: torch.Tensor,  # float64 [1, N]
    abs_terms: torch.Tensor,  # float64 [1, N]: S = sum_k |W[n, k] a_k|
    *,
    per_term_roundings: int,  # activation-dtype roundings of each a_k before the sum
    in_features: int,
) -> None:
    """|result - exact| <= u |exact| (the final rounding) + (1 + u) * ((1 + u)^r - 1 +
    K * 2^-24) * S (r roundings of each term, float32 products and accumulation)."""
    unit = unit_roundoff(result.dtype)
    per_term = (1 + unit) ** per_term_roundings - 1 + in_features * 2.0**-24
    bound = (
        unit * exact.abs()
        + (1 + unit) * per_term * abs_terms
        + torch.finfo(result.dtype).smallest_normal  # float16's subnormal spacing near 0
    )
    error = (result.double() - exact).abs()
    assert bool((error <= bound).all()), f"error up to {(error / bound).max():.3f} of the bound"


def norm_problem(
    out_features: int, in_features: int, dtype: torch.dtype, *, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(1, in_features, generator=generator).to(dtype)
    residual = torch.randn(1, in_features, generator=generator).to(dtype)
    norm_weight = (1 + torch.rand(in_features, generator=generator)).to(dtype)
    weight = torch.randn(out_features, in_features, generator=generator) / in_features**0.5
    return x, residual, norm_weight, weight.to(dtype)


def exact_norm_linear(
    h: torch.Tensor, norm_weight: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(rms_norm(h) @ weight.T, S) in float64, no intermediate rounding."""
    h64 = h.double()
    scale = torch.rsqrt(h64.pow(2).mean(-1, keepdim=True) + EPS)
    normed = h64 * scale * norm_weight.double()  # [1, K]
    weight64 = weight.double()
    return normed @ weight64.T, normed.abs() @ weight64.abs().T


@pytest.mark.parametrize("config", LAUNCHES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=str)
@pytest.mark.parametrize("with_residual", [False, True], ids=["no-residual", "residual"])
def test_rms_norm_gemv_rounds_the_exact_product_once(
    config: GemvConfig, dtype: torch.dtype, with_residual: bool
) -> None:
    for seed, (out_features, in_features) in enumerate(SHAPES):
        x, residual, norm_weight, weight = norm_problem(out_features, in_features, dtype, seed=seed)
        x_before, residual_before = x.clone(), residual.clone()
        out, h = gemv_rms_norm(
            x, norm_weight, EPS, weight, residual if with_residual else None, config=config
        )
        assert out.shape == (1, out_features) and out.dtype == dtype
        if with_residual:
            assert h is not None and h.data_ptr() not in (x.data_ptr(), residual.data_ptr())
            assert torch.equal(h, x + residual)  # rounded to the activation dtype, once
        else:
            assert h is None
        assert torch.equal(x, x_before) and torch.equal(residual, residual_before)
        exact, abs_terms = exact_norm_linear(
            x + residual if with_residual else x, norm_weight, weight
        )
        assert_within(out, exact, abs_terms, per_term_roundings=0, in_features=in_features)


@pytest.mark.parametrize("with_residual", [False, True], ids=["no-residual", "residual"])
def test_rms_norm_gemv_differs_from_the_unfused_chain_by_its_roundings(
    with_residual: bool,
) -> None:
    config = LAUNCHES[0]
    x, residual, norm_weight, weight = norm_problem(100, 200, torch.float16, seed=7)
    fused, h = gemv_rms_norm(
        x, norm_weight, EPS, weight, residual.clone() if with_residual else None, config=config
    )
    # The unfused chain as the engine runs it: the rms_norm kernel (in place), then the GEMV.
    if with_residual:
        normed, summed = rms_norm(x.clone(), norm_weight, EPS, residual.clone())
        assert h is not None and torch.equal(h, summed)
    else:
        normed = rms_norm(x, norm_weight, EPS)
    chain = gemv(normed, weight, None, config)
    exact, abs_terms = exact_norm_linear(x + residual if with_residual else x, norm_weight, weight)
    assert_within(fused, exact, abs_terms, per_term_roundings=0, in_features=200)
    assert_within(chain, exact, abs_terms, per_term_roundings=2, in_features=200)
    assert not torch.equal(fused, chain)  # the two roundings do show at float16
    expected_chain = ops_reference.rms_norm(
        x, norm_weight, EPS, residual if with_residual else None
    )
    if with_residual:
        expected_chain = expected_chain[0]
    assert torch.equal(normed, expected_chain)


def silu_problem(
    out_features: int, in_features: int, dtype: torch.dtype, *, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    gate_up = 2 * torch.randn(1, 2 * in_features, generator=generator)  # silu's bend and tails
    weight = torch.randn(out_features, in_features, generator=generator) / in_features**0.5
    return gate_up.to(dtype), weight.to(dtype)


@pytest.mark.parametrize("config", LAUNCHES, ids=str)
def test_silu_gemv_equals_silu_and_mul_then_gemv_bit_for_bit(config: GemvConfig) -> None:
    for seed, (out_features, in_features) in enumerate(SHAPES):
        x, weight = silu_problem(out_features, in_features, torch.float16, seed=seed)
        x_before = x.clone()
        out = gemv_silu_and_mul(x, weight, config=config)
        assert torch.equal(out, gemv(silu_and_mul(x), weight, None, config))
        assert torch.equal(x, x_before)


@pytest.mark.parametrize("config", LAUNCHES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=str)
def test_silu_gemv_is_within_its_roundings_of_the_exact_product(
    config: GemvConfig, dtype: torch.dtype
) -> None:
    for seed, (out_features, in_features) in enumerate(SHAPES):
        x, weight = silu_problem(out_features, in_features, dtype, seed=seed + 10)
        activated = ops_reference.silu_and_mul(x.double())  # [1, K], exact up to float64
        exact = activated @ weight.double().T
        abs_terms = activated.abs() @ weight.double().abs().T
        out = gemv_silu_and_mul(x, weight, config=config)
        # silu(gate) and its product with up are each rounded to the activation dtype; the
        # float32 exp adds a few float32 ulps, inside the accumulation term.
        assert_within(out, exact, abs_terms, per_term_roundings=2, in_features=in_features)


def test_strided_weight_rows_are_read_through_their_stride() -> None:
    config = LAUNCHES[0]
    x, residual, norm_weight, wide = norm_problem(40, 230, torch.float16, seed=3)
    weight = wide[:, 10:210]  # [40, 200], rows 230 apart
    out, _ = gemv_rms_norm(x[:, 10:210], norm_weight[10:210], EPS, weight, config=config)
    expected, _ = gemv_rms_norm(
        x[:, 10:210].contiguous(), norm_weight[10:210], EPS, weight.contiguous(), config=config
    )
    assert torch.equal(out, expected)
    gate_up, _ = silu_problem(1, 200, torch.float16, seed=4)
    assert torch.equal(
        gemv_silu_and_mul(gate_up, weight, config=config),
        gemv_silu_and_mul(gate_up, weight.contiguous(), config=config),
    )


def test_fused_gemvs_refuse_what_they_cannot_serve() -> None:
    config = LAUNCHES[0]
    x, residual, norm_weight, weight = norm_problem(16, 32, torch.float16, seed=0)
    gate_up = torch.cat((x, x), dim=1)  # [1, 64]
    with pytest.raises(ValueError, match="serves one token"):
        gemv_rms_norm(x.expand(2, 32), norm_weight, EPS, weight, config=config)
    with pytest.raises(ValueError, match="serves one token"):
        gemv_silu_and_mul(gate_up.expand(3, 64), weight, config=config)
    with pytest.raises(ValueError, match=r"x must be \[1, 64\]"):
        gemv_silu_and_mul(x, weight, config=config)
    with pytest.raises(ValueError, match=r"x must be \[1, 32\]"):
        gemv_rms_norm(gate_up, norm_weight, EPS, weight, config=config)
    with pytest.raises(ValueError, match="num_splits=1"):
        gemv_silu_and_mul(
            gate_up, weight, config=GemvConfig(kernel="fma", block_n=8, block_k=64, num_splits=2)
        )
    with pytest.raises(ValueError, match="kernel='fma'"):
        gemv_rms_norm(
            x, norm_weight, EPS, weight, config=GemvConfig(kernel="dot", block_n=16, block_k=32)
        )
    with pytest.raises(ValueError, match="float16, bfloat16 or float32"):
        gemv_silu_and_mul(gate_up.double(), weight.double(), config=config)
    with pytest.raises(ValueError, match="weight of x's dtype"):
        gemv_rms_norm(x, norm_weight, EPS, weight.float(), config=config)
    with pytest.raises(ValueError, match="unit column stride"):
        gemv_rms_norm(x, norm_weight, EPS, weight.t().contiguous().t(), config=config)
    with pytest.raises(ValueError, match="non-empty weight"):
        gemv_silu_and_mul(gate_up[:, :0], weight[:, :0], config=config)
    with pytest.raises(ValueError, match=r"norm_weight must be a contiguous \[32\]"):
        gemv_rms_norm(x, norm_weight.float(), EPS, weight, config=config)
    with pytest.raises(ValueError, match=r"norm_weight must be a contiguous \[32\]"):
        gemv_rms_norm(x, norm_weight[:16], EPS, weight, config=config)
    with pytest.raises(ValueError, match=r"residual must be \[1, 32\]"):
        gemv_rms_norm(x, norm_weight, EPS, weight, residual.float(), config=config)
    with pytest.raises(ValueError, match=r"residual must be \[1, 32\]"):
        gemv_rms_norm(x, norm_weight, EPS, weight, gate_up[:, ::2], config=config)
