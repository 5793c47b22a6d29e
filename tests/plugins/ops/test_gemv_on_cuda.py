"""The GEMV compiled for a CUDA GPU in bfloat16: every launch the benchmark sweeps, at
Llama-3.1-8B's attention shapes and a ragged one, and graph replay on refilled inputs.

Run on the GPU machine with the interpreter off: `TRITON_INTERPRET=0 python -m pytest -m gpu
tests/plugins/ops`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import attrs
import pytest
import torch
import triton

from tenon.plugins.ops.triton_kernels.gemv import GemvConfig, gemv
from tenon.plugins.ops.triton_kernels.gemv_table import (
    CANDIDATES,
    TUNED,
    WIDE_CANDIDATES,
    dot_tokens,
    token_bucket,
)
from tenon.plugins.ops.triton_kernels.linear import linear

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(
        os.environ.get("TRITON_INTERPRET") == "1",
        reason="Triton's interpreter is on: run with TRITON_INTERPRET=0 to compile the kernels",
    ),
]

ATOL, RTOL = 1e-2, 1.6e-2  # one bfloat16 rounding step
Problem = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]  # x, weight, bias


def problem(
    num_tokens: int, out_features: int, in_features: int, *, with_bias: bool, seed: int
) -> Problem:
    generator = torch.Generator(device="cuda").manual_seed(seed)
    shape_x, shape_w = (num_tokens, in_features), (out_features, in_features)
    x = torch.randn(shape_x, generator=generator, device="cuda").bfloat16()
    weight = torch.randn(shape_w, generator=generator, device="cuda") / in_features**0.5
    bias = torch.randn(out_features, generator=generator, device="cuda") if with_bias else None
    return x, weight.bfloat16(), None if bias is None else bias.bfloat16()


def float32_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    product = torch.nn.functional.linear(
        x.float(), weight.float(), None if bias is None else bias.float()
    )
    return product.to(x.dtype)


@pytest.mark.parametrize("config", CANDIDATES, ids=str)
def test_every_swept_launch_gives_the_float32_product(config: GemvConfig) -> None:
    for num_splits in (1, 4):
        launch = attrs.evolve(config, num_splits=num_splits)
        for out_features, in_features, with_bias in ((6144, 4096, False), (1000, 1000, True)):
            for num_tokens in (1, 2, 8) if config.kernel == "dot" else (1,):
                x, weight, bias = problem(
                    num_tokens, out_features, in_features, with_bias=with_bias, seed=num_tokens
                )
                torch.testing.assert_close(
                    gemv(x, weight, bias, launch), float32_linear(x, weight, bias),
                    atol=ATOL, rtol=RTOL, msg=f"{launch} at {num_tokens} tokens, "
                    f"[{out_features}, {in_features}]: outside one bfloat16 rounding step",
                )  # fmt: skip


@pytest.mark.parametrize("config", WIDE_CANDIDATES, ids=str)
@pytest.mark.parametrize("num_tokens", [17, 48, 64, 100])
def test_every_wide_launch_gives_the_float32_product(config: GemvConfig, num_tokens: int) -> None:
    launch = attrs.evolve(config, tokens=dot_tokens(num_tokens), num_splits=2)
    for out_features, in_features, with_bias in ((6144, 4096, False), (1000, 1000, True)):
        x, weight, bias = problem(num_tokens, out_features, in_features, with_bias=with_bias, seed=num_tokens)
        try:
            out = gemv(x, weight, bias, launch)
        except triton.runtime.errors.OutOfResources:
            continue  # a tile too large for this card's shared memory: the sweep skips it too
        torch.testing.assert_close(
            out, float32_linear(x, weight, bias), atol=ATOL, rtol=RTOL,
            msg=f"{launch} at {num_tokens} tokens: outside one bfloat16 rounding step",
        )  # fmt: skip


def replayed_outputs(
    function: Callable[..., torch.Tensor], static: Problem, refills: list[Problem]
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
            if target is not None and source is not None:
                target.copy_(source)
        graph.replay()
        outputs.append(out.clone())
    torch.cuda.synchronize()
    return outputs


@pytest.mark.parametrize(
    "config",
    [
        GemvConfig(kernel="dot", block_n=32, block_k=256, num_splits=3, num_stages=4),
        GemvConfig(kernel="fma", block_n=8, block_k=512, num_splits=2, num_stages=3),
    ],
    ids=str,
)
def test_split_launch_replays_in_a_graph_on_refilled_inputs(config: GemvConfig) -> None:
    num_tokens = 4 if config.kernel == "dot" else 1
    static = problem(num_tokens, 1000, 3000, with_bias=True, seed=1)
    refills = [problem(num_tokens, 1000, 3000, with_bias=True, seed=s) for s in (2, 3)]
    outputs = replayed_outputs(lambda x, w, b: gemv(x, w, b, config), static, refills)
    for out, (x, weight, bias) in zip(outputs, refills, strict=True):
        # The split sums are rewritten, not accumulated, on every replay.
        torch.testing.assert_close(out, float32_linear(x, weight, bias), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize(
    "num_tokens,out_features",
    [(1, 4096), (2, 4096), (8, 4096), (20, 4096), (48, 28672)],  # o_proj; wide: o_proj, gate_up
)
def test_linear_op_replays_the_tuned_launch(num_tokens: int, out_features: int) -> None:
    assert TUNED[(out_features, 4096, token_bucket(num_tokens))] is not None
    static = problem(num_tokens, out_features, 4096, with_bias=False, seed=4)
    refills = [problem(num_tokens, out_features, 4096, with_bias=False, seed=s) for s in (5, 6)]
    outputs = replayed_outputs(linear, static, refills)
    for out, (x, weight, bias) in zip(outputs, refills, strict=True):
        torch.testing.assert_close(out, float32_linear(x, weight, bias), atol=ATOL, rtol=RTOL)
