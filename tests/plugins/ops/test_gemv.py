"""The GEMV's launches, its shape table and the linear op's fall-backs, in Triton's interpreter
on CPU tensors (float16; bfloat16 runs on the GPU, test_gemv_on_cuda.py)."""

from __future__ import annotations

import os

import pytest
import torch

from tenon.plugins.ops.triton_kernels import linear
from tenon.plugins.ops.triton_kernels.gemv import GemvConfig, gemv, split_layout
from tenon.plugins.ops.triton_kernels.gemv_table import (
    TUNED,
    choose_gemv_config,
    default_config,
)

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1",
    reason="the CPU tests run the kernels in Triton's interpreter (TRITON_INTERPRET=1)",
)

# Small blocks, so tiny shapes still take several programs, splits and steps.
LAUNCHES = (
    GemvConfig(kernel="dot", block_n=16, block_k=32),  # 200 % 32 != 0: a masked last step
    GemvConfig(kernel="dot", block_n=32, block_k=64, num_splits=3),  # 2 splits, the last short
    GemvConfig(kernel="dot", block_n=64, block_k=16, num_splits=4),
    GemvConfig(kernel="dot", block_n=16, block_k=32, num_splits=2, tokens=32),  # batched decode
    GemvConfig(kernel="dot", block_n=32, block_k=64, tokens=64),
    GemvConfig(kernel="fma", block_n=8, block_k=64),
    GemvConfig(kernel="fma", block_n=4, block_k=32, num_splits=2, num_stages=1),
)


def problem(
    num_tokens: int, out_features: int, in_features: int, *, with_bias: bool, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(num_tokens, in_features, generator=generator).half()
    weight = (torch.randn(out_features, in_features, generator=generator) / in_features**0.5).half()
    bias = torch.randn(out_features, generator=generator).half() if with_bias else None
    return x, weight, bias


def float32_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:  # the exact product of the 16-bit inputs, rounded once to their dtype
    product = torch.nn.functional.linear(
        x.float(), weight.float(), None if bias is None else bias.float()
    )
    return product.to(x.dtype)


@pytest.mark.parametrize("config", LAUNCHES, ids=str)
@pytest.mark.parametrize("with_bias", [False, True], ids=["no-bias", "bias"])
def test_every_launch_gives_the_float32_product(config: GemvConfig, with_bias: bool) -> None:
    token_counts = {1: (1,), 16: (1, 3, 8)}.get(config.tokens, (1, config.tokens // 2 + 3, config.tokens))
    for num_tokens in token_counts:
        x, weight, bias = problem(num_tokens, 100, 200, with_bias=with_bias, seed=num_tokens)
        out = gemv(x, weight, bias, config)
        # Only float32 summation order separates the two: at most one fp16 rounding step.
        torch.testing.assert_close(out, float32_linear(x, weight, bias), atol=1e-3, rtol=1e-3)


def test_strided_rows_are_read_through_their_strides() -> None:
    x_rows, weight_rows, _ = problem(3, 40, 130, with_bias=False, seed=5)
    x = x_rows[:, 2:98]  # [3, 96], rows 130 apart
    weight = weight_rows[:, 10:106]  # [40, 96], rows 130 apart
    expected = float32_linear(x, weight, None)
    for config in (LAUNCHES[1], GemvConfig(kernel="fma", block_n=8, block_k=32)):
        out = gemv(x[:1] if config.kernel == "fma" else x, weight, None, config)
        wanted = expected[:1] if config.kernel == "fma" else expected
        torch.testing.assert_close(out, wanted, atol=1e-3, rtol=1e-3)


def test_split_layout_covers_k_with_whole_blocks_and_no_empty_split() -> None:
    assert split_layout(2100, 256, 4) == (768, 3)
    assert split_layout(4096, 256, 4) == (1024, 4)
    assert split_layout(200, 64, 3) == (128, 2)
    assert split_layout(100, 64, 8) == (64, 2)
    assert split_layout(72, 128, 1) == (128, 1)


def test_gemv_refuses_what_it_cannot_serve() -> None:
    x, weight, _ = problem(2, 16, 32, with_bias=False, seed=0)
    with pytest.raises(ValueError, match="fma GEMV serves 1 to 1 tokens"):
        gemv(x, weight, None, GemvConfig(kernel="fma", block_n=8, block_k=64))
    many, _, _ = problem(33, 16, 32, with_bias=False, seed=0)
    with pytest.raises(ValueError, match="dot GEMV serves 1 to 32 tokens"):
        gemv(many, weight, None, GemvConfig(kernel="dot", block_n=16, block_k=32, tokens=32))
    with pytest.raises(ValueError, match="pads tokens to one of"):
        GemvConfig(kernel="dot", block_n=16, block_k=32, tokens=48)
    with pytest.raises(ValueError, match="pads tokens to one of"):
        GemvConfig(kernel="fma", block_n=8, block_k=32, tokens=16)
    with pytest.raises(ValueError, match="float16 or bfloat16"):
        gemv(x.float(), weight.float(), None, LAUNCHES[0])
    with pytest.raises(ValueError, match="unit column stride"):
        gemv(x, weight.t().contiguous().t(), None, LAUNCHES[0])
    with pytest.raises(ValueError, match="power of two"):
        GemvConfig(kernel="dot", block_n=24, block_k=32)
    with pytest.raises(ValueError, match="at least 16"):
        GemvConfig(kernel="dot", block_n=8, block_k=32)


def test_table_sends_llama_8b_projections_where_measured() -> None:
    bf16 = torch.bfloat16
    # Measured on an H200: cuBLAS as fast on qkv; the GEMV wins at one token on o_proj,
    # gate_up, down and lm_head, and on lm_head cuBLAS wins again from two tokens.
    assert choose_gemv_config(1, 6144, 4096, bf16) is None
    assert choose_gemv_config(3, 4096, 4096, bf16) == TUNED[(4096, 4096, 4)] is not None
    for out_features, in_features in ((4096, 4096), (28672, 4096), (4096, 14336), (128256, 4096)):
        config = choose_gemv_config(1, out_features, in_features, bf16)
        assert config is not None and config.kernel == "fma"
    assert choose_gemv_config(2, 128256, 4096, bf16) is None
    assert choose_gemv_config(16, 6144, 4096, bf16) is None  # no entry, above the default
    # Batched decode: the wide dot kernel where it beat cuBLAS, padded to the bucket's width.
    for num_tokens, out_features, in_features, width in (
        (17, 4096, 4096, 32), (48, 28672, 4096, 64), (32, 128256, 4096, 32), (64, 128256, 4096, 64),
    ):
        config = choose_gemv_config(num_tokens, out_features, in_features, bf16)
        assert config is not None and (config.kernel, config.tokens) == ("dot", width)
    for num_tokens in (17, 33, 64, 65, 128):
        assert choose_gemv_config(num_tokens, 6144, 4096, bf16) is None  # qkv stays cuBLAS
    assert choose_gemv_config(100, 128256, 4096, bf16) is None
    assert choose_gemv_config(129, 4096, 4096, bf16) is None  # past every launch


def test_default_rule_for_other_shapes() -> None:
    half = torch.float16
    assert choose_gemv_config(4, 300, 2100, half) == default_config(300, 2100)
    assert choose_gemv_config(5, 300, 2100, half) is None  # more tokens than the default
    assert choose_gemv_config(1, 300, 2100, torch.float32) is None
    assert choose_gemv_config(0, 300, 2100, half) is None
    assert choose_gemv_config(1, 8192, 8192, half) is None  # 64M weights: cuBLAS territory
    assert choose_gemv_config(1, 4096, 8192, half) == default_config(4096, 8192)
    # 10 programs of 32 rows: K splits 4 ways (a fifth would leave a split one block).
    assert default_config(300, 2100) == GemvConfig(
        kernel="dot", block_n=32, block_k=256, num_splits=4, num_stages=4
    )
    # 64 programs: split until 256, as 2048 columns allow.
    assert default_config(2048, 2048).num_splits == 4
    # 128 programs with K = 4096: 256 programs at 2 splits, then 512 at 4.
    assert default_config(4096, 4096).num_splits == 4
    assert default_config(100, 72) == GemvConfig(
        kernel="dot", block_n=32, block_k=128, num_splits=1, num_stages=4
    )


def calls_to_gemv(monkeypatch: pytest.MonkeyPatch) -> list[GemvConfig]:
    configs: list[GemvConfig] = []

    def recording_gemv(
        x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, config: GemvConfig
    ) -> torch.Tensor:
        configs.append(config)
        return gemv(x, weight, bias, config)

    monkeypatch.setattr(linear, "gemv", recording_gemv)
    return configs


def test_linear_takes_the_gemv_for_decode_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    configs = calls_to_gemv(monkeypatch)
    x, weight, bias = problem(2, 300, 2100, with_bias=True, seed=8)
    out = linear.linear(x, weight, bias)
    assert configs == [default_config(300, 2100)]
    torch.testing.assert_close(out, float32_linear(x, weight, bias), atol=1e-3, rtol=1e-3)


def test_linear_leaves_other_shapes_and_layouts_to_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    configs = calls_to_gemv(monkeypatch)
    x, weight, bias = problem(40, 100, 72, with_bias=True, seed=9)
    assert bias is not None
    few = x[:2]
    cases = {
        "prefill": (x, weight, bias),
        "float32": (few.float(), weight.float(), bias.float()),
        "transposed weight": (few, weight.t().contiguous().t(), bias),
        "transposed x": (few.t().contiguous().t(), weight, bias),
        "3-d x": (x.view(4, 10, 72), weight, bias),
    }
    for name, (x_in, weight_in, bias_in) in cases.items():
        expected = torch.nn.functional.linear(x_in, weight_in, bias_in)
        assert torch.equal(linear.linear(x_in, weight_in, bias_in), expected), name
    assert configs == []
    with pytest.raises(RuntimeError):  # torch's own error for a mismatched bias dtype
        linear.linear(few, weight, bias.float())
