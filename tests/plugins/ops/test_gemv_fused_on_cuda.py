"""The fused GEMVs compiled for a CUDA GPU in bfloat16, at Llama-3.1-8B's decode shapes: the
RMSNorm prologue before qkv and gate_up, the SiLU-and-mul prologue before down, a ragged shape,
and graph replay on refilled inputs.

Run on the GPU machine with the interpreter off: `TRITON_INTERPRET=0 python -m pytest -m gpu
tests/plugins/ops/test_gemv_fused_on_cuda.py`.

Tolerances are the rounding bounds of test_gemv_fused.py against an exact (float64) product,
with bfloat16's unit roundoff u = 2^-8: the fused RMSNorm GEMV within u |exact| + K * 2^-24 * S
(S = sum_k |W[n, k] a_k|), the unfused chain within about 2u S more. The SiLU GEMV is compared
bit for bit with gemv(silu_and_mul(x)), the two-kernel path it replaces.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import attrs
import pytest
import torch

from tenon.plugins.ops.triton_kernels.gemv import GemvConfig, gemv
from tenon.plugins.ops.triton_kernels.gemv_fused import gemv_rms_norm, gemv_silu_and_mul
from tenon.plugins.ops.triton_kernels.gemv_table import CANDIDATES, TUNED
from tenon.plugins.ops.triton_kernels.rms_norm import rms_norm
from tenon.plugins.ops.triton_kernels.silu_and_mul import silu_and_mul

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(
        os.environ.get("TRITON_INTERPRET") == "1",
        reason="Triton's interpreter is on: run with TRITON_INTERPRET=0 to compile the kernels",
    ),
]

EPS = 1e-5
UNIT = 2.0**-8  # bfloat16's unit roundoff
# The table keeps cuBLAS for qkv; n16 k256 is the GEMV launch measured fastest there.
QKV_LAUNCH = GemvConfig(kernel="fma", block_n=16, block_k=256, num_warps=4, num_stages=3)
RAGGED_LAUNCH = GemvConfig(kernel="fma", block_n=16, block_k=256, num_stages=1)
# name -> (out_features, in_features, launch); 1000 is a multiple of neither 16 nor 256.
NORM_CASES = {
    "qkv": (6144, 4096, QKV_LAUNCH),
    "gate_up": (28672, 4096, TUNED[(28672, 4096, 1)]),
    "ragged": (1000, 1000, RAGGED_LAUNCH),
}
SILU_CASES = {
    "down": (4096, 14336, TUNED[(4096, 14336, 1)]),
    "ragged": (1000, 1000, RAGGED_LAUNCH),
}
FMA_CANDIDATES = [config for config in CANDIDATES if config.kernel == "fma"]


def generator(seed: int) -> torch.Generator:
    return torch.Generator(device="cuda").manual_seed(seed)


def norm_problem(out_features: int, in_features: int, *, seed: int) -> tuple[torch.Tensor, ...]:
    random = generator(seed)
    x = torch.randn(1, in_features, generator=random, device="cuda").bfloat16()
    residual = torch.randn(1, in_features, generator=random, device="cuda").bfloat16()
    norm_weight = (1 + torch.rand(in_features, generator=random, device="cuda")).bfloat16()
    weight = torch.randn(out_features, in_features, generator=random, device="cuda")
    return x, residual, norm_weight, (weight / in_features**0.5).bfloat16()


def silu_problem(out_features: int, in_features: int, *, seed: int) -> tuple[torch.Tensor, ...]:
    random = generator(seed)
    gate_up = 2 * torch.randn(1, 2 * in_features, generator=random, device="cuda")
    weight = torch.randn(out_features, in_features, generator=random, device="cuda")
    return gate_up.bfloat16(), (weight / in_features**0.5).bfloat16()


def exact_product(
    activation: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:  # (a @ W.T, S), float64 [1, N] each
    weight64 = weight.double()
    return activation @ weight64.T, activation.abs() @ weight64.abs().T


def exact_norm_linear(
    h: torch.Tensor, norm_weight: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    h64 = h.double()
    scale = torch.rsqrt(h64.pow(2).mean(-1, keepdim=True) + EPS)
    return exact_product(h64 * scale * norm_weight.double(), weight)


def assert_within(
    result: torch.Tensor,
    exact: torch.Tensor,
    abs_terms: torch.Tensor,
    *,
    per_term_roundings: int,
    in_features: int,
    what: str,
) -> None:
    per_term = (1 + UNIT) ** per_term_roundings - 1 + in_features * 2.0**-24
    bound = UNIT * exact.abs() + (1 + UNIT) * per_term * abs_terms
    error = (result.double() - exact).abs()
    assert bool((error <= bound).all()), (
        f"{what}: error up to {(error / bound).max().item():.3f} of its rounding bound"
    )


@pytest.mark.parametrize("case", list(NORM_CASES), ids=str)
@pytest.mark.parametrize("with_residual", [False, True], ids=["no-residual", "residual"])
def test_rms_norm_gemv_at_llama_shapes(case: str, with_residual: bool) -> None:
    out_features, in_features, config = NORM_CASES[case]
    assert config is not None
    x, residual, norm_weight, weight = norm_problem(out_features, in_features, seed=1)
    fused, h = gemv_rms_norm(
        x, norm_weight, EPS, weight, residual if with_residual else None, config=config
    )
    summed = x + residual if with_residual else x
    if with_residual:
        assert h is not None and torch.equal(h, summed)
        normed, chain_summed = rms_norm(x.clone(), norm_weight, EPS, residual.clone())
        assert torch.equal(chain_summed, summed)
    else:
        assert h is None
        normed = rms_norm(x, norm_weight, EPS)
    chain = gemv(normed, weight, None, config)  # the two kernels the fused one replaces
    exact, abs_terms = exact_norm_linear(summed, norm_weight, weight)
    common = {"in_features": in_features}
    assert_within(fused, exact, abs_terms, per_term_roundings=0, what="fused", **common)
    assert_within(chain, exact, abs_terms, per_term_roundings=2, what="chain", **common)


@pytest.mark.parametrize("case", list(SILU_CASES), ids=str)
def test_silu_gemv_equals_the_two_kernels_bit_for_bit(case: str) -> None:
    out_features, in_features, tuned = SILU_CASES[case]
    assert tuned is not None
    x, weight = silu_problem(out_features, in_features, seed=2)
    activated = silu_and_mul(x)
    for config in [tuned, *FMA_CANDIDATES]:
        out = gemv_silu_and_mul(x, weight, config=config)
        assert torch.equal(out, gemv(activated, weight, None, config)), str(config)
    exact, abs_terms = exact_product(activated.double(), weight)
    # activated is already rounded twice (silu, then the product); only the GEMV's own
    # rounding and accumulation remain.
    assert_within(out, exact, abs_terms, per_term_roundings=0, in_features=in_features, what="silu")


def replayed_outputs(
    function: Callable[..., torch.Tensor],
    static: tuple[torch.Tensor, ...],
    refills: list[tuple[torch.Tensor, ...]],
) -> list[torch.Tensor]:
    """Capture `function(*static)`, then per refill copy it in, replay and clone the output."""
    side_stream = torch.cuda.Stream()
    side_stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side_stream):
        function(*static)  # compiles outside capture
    torch.cuda.current_stream().wait_stream(side_stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = function(*static)
    outputs = []
    for refill in refills:
        for target, source in zip(static, refill, strict=True):
            target.copy_(source)
        graph.replay()
        outputs.append(out.clone())
    torch.cuda.synchronize()
    return outputs


def test_fused_gemvs_replay_in_a_graph_on_refilled_inputs() -> None:
    config = attrs.evolve(RAGGED_LAUNCH, num_stages=3)

    def norm_then_gemv(*problem: torch.Tensor) -> torch.Tensor:
        x, residual, norm_weight, weight = problem
        out, h = gemv_rms_norm(x, norm_weight, EPS, weight, residual, config=config)
        assert h is not None
        return torch.cat((out, h), dim=1)  # [1, N + K]: both outputs of the replay

    static = norm_problem(1000, 1000, seed=3)
    refills = [norm_problem(1000, 1000, seed=seed) for seed in (4, 5)]
    for out, problem in zip(
        replayed_outputs(norm_then_gemv, static, refills), refills, strict=True
    ):
        assert torch.equal(out, norm_then_gemv(*problem))  # eager: the same kernel, bit for bit

    def silu_then_gemv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return gemv_silu_and_mul(x, weight, config=config)

    static = silu_problem(1000, 1000, seed=6)
    refills = [silu_problem(1000, 1000, seed=seed) for seed in (7, 8)]
    for out, problem in zip(
        replayed_outputs(silu_then_gemv, static, refills), refills, strict=True
    ):
        assert torch.equal(out, gemv(silu_and_mul(problem[0]), problem[1], None, config))
