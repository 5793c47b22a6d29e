"""The layers with an op installed must give what they give on their own torch path.

This checks the op through the calls `tenon.layers` makes (positional arguments, the fused
residual, the rotated heads taken from the op's return value), so an op that passes the cases
but mistakes the layers' convention still fails. The device's op table is restored after.
Linear layers run through the unquantized scheme's method, the one that calls the op.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from tenon.layers import ops
from tenon.layers.activation import SiluAndMul
from tenon.layers.fused import norm_then_linear, silu_and_mul_then_linear
from tenon.layers.linear import Linear, MergedLinear
from tenon.layers.norm import RMSNorm
from tenon.layers.rotary import RotaryEmbedding
from tenon.spec.ops import OP_NAMES
from tenon.testing.op_cases import Tolerance, assert_matches, random_tensor
from tenon.testing.op_cases_fused import FUSED_OPS, fused_tolerance

NUM_TOKENS = 5


@contextmanager
def installed(device_type: str, op: str, function: Callable[..., Any] | None) -> Iterator[None]:
    """`function` as the device's `op` (None: the torch path) for a `with` block."""
    previous = {name: ops.selected(name, device_type) for name in OP_NAMES}
    ops.install(device_type, {**previous, op: function})
    try:
        yield
    finally:
        ops.install(device_type, previous)


def check_layer_uses_op(
    op: str,
    function: Callable[..., Any],
    device: torch.device,
    dtype: torch.dtype,
    tolerance: Tolerance,
) -> None:
    generator = torch.Generator().manual_seed(7)
    run = _LAYER_RUNS[op]
    with installed(device.type, op, None):
        expected = run(generator, device, dtype)
    generator.manual_seed(7)
    with installed(device.type, op, function):
        actual = run(generator, device, dtype)
    if op in FUSED_OPS:  # may skip the rounding of the intermediate (tenon.spec.ops)
        tolerance = fused_tolerance(tolerance)
    for name, wanted in expected.items():
        assert_matches(actual[name], wanted, tolerance, f"tenon.layers with {op} installed: {name}")


def _run_rms_norm(
    generator: torch.Generator, device: torch.device, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    hidden_size = 100
    norm = RMSNorm(hidden_size, 1e-6, dtype=dtype, device=device)
    norm.weight.data.copy_(1.0 + 0.5 * random_tensor((hidden_size,), generator))
    x, residual = (
        random_tensor((NUM_TOKENS, hidden_size), generator).to(dtype=dtype, device=device)
        for _ in range(2)
    )
    with torch.inference_mode():
        normed = norm(x.clone())
        fused, summed = norm(x.clone(), residual.clone())
    return {"norm(x)": normed, "norm(x, residual)[0]": fused, "norm(x, residual)[1]": summed}


def _run_silu_and_mul(
    generator: torch.Generator, device: torch.device, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    x = random_tensor((NUM_TOKENS, 2 * 48), generator).to(dtype=dtype, device=device)
    with torch.inference_mode():
        return {"SiluAndMul()(x)": SiluAndMul()(x)}


def _run_rotary(
    generator: torch.Generator, device: torch.device, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    head_size, num_heads, num_kv_heads, max_position = 64, 4, 2, 128
    embedding = RotaryEmbedding(
        head_size, head_size // 2, max_position, 10000.0, None, dtype=dtype, device=device
    )
    positions = torch.randint(0, max_position, (NUM_TOKENS,), generator=generator).to(device)
    # qkv: [num_tokens, (num_heads + 2 * num_kv_heads) * head_size]
    qkv = random_tensor((NUM_TOKENS, (num_heads + 2 * num_kv_heads) * head_size), generator).to(
        dtype=dtype, device=device
    )
    query_width, key_width = num_heads * head_size, num_kv_heads * head_size
    query, key = qkv[:, :query_width], qkv[:, query_width : query_width + key_width]
    with torch.inference_mode():
        rotated_query, rotated_key = embedding(positions, query, key)
        step = embedding.step(positions)
        heads = qkv[:, :query_width].view(NUM_TOKENS, num_heads, head_size)
        applied = embedding.rotate(step, heads)
    return {"forward query": rotated_query, "forward key": rotated_key, "apply": applied}


def _run_linear(
    generator: torch.Generator, device: torch.device, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    from tenon.plugins.quantization.none import NoQuantScheme

    hidden_size, head_width = 96, 32
    layers = {
        "qkv": MergedLinear(hidden_size, [2 * head_width, head_width, head_width], bias=True,
                            quant_scheme=NoQuantScheme(), prefix="qkv", dtype=dtype,
                            device=device),
        "o_proj": Linear(2 * head_width, hidden_size, bias=False, quant_scheme=NoQuantScheme(),
                         prefix="o_proj", dtype=dtype, device=device),
    }  # fmt: skip
    for layer in layers.values():
        for parameter in layer.parameters():  # weights scaled for unit-variance outputs
            values = random_tensor(tuple(parameter.shape), generator)
            parameter.data.copy_(
                values / parameter.shape[-1] ** 0.5 if parameter.dim() == 2 else values
            )
    outputs = {}
    with torch.inference_mode():
        # A decode step's one token and a few (the sizes a GEMV takes), then a prefill's many.
        for num_tokens in (1, 3, 40):
            x = random_tensor((num_tokens, hidden_size), generator).to(dtype=dtype, device=device)
            qkv = layers["qkv"](x)
            outputs[f"qkv({num_tokens} tokens)"] = qkv
            # The query columns: a view whose rows are qkv's, wider than the layer's input.
            outputs[f"o_proj({num_tokens} tokens)"] = layers["o_proj"](qkv[:, : 2 * head_width])
    return outputs


def _dense_linears(
    generator: torch.Generator, device: torch.device, dtype: torch.dtype, in_features: int,
    out_features: int,
) -> MergedLinear:
    from tenon.plugins.quantization.none import NoQuantScheme

    linear = MergedLinear(in_features, [out_features // 2, out_features - out_features // 2],
                          bias=False, quant_scheme=NoQuantScheme(), prefix="fused", dtype=dtype,
                          device=device)  # fmt: skip
    linear.weight.data.copy_(random_tensor((out_features, in_features), generator) / in_features**0.5)
    return linear


def _run_rms_norm_linear(
    generator: torch.Generator, device: torch.device, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    hidden_size, out_features = 100, 72
    norm = RMSNorm(hidden_size, 1e-6, dtype=dtype, device=device)
    norm.weight.data.copy_(1.0 + 0.5 * random_tensor((hidden_size,), generator))
    linear = _dense_linears(generator, device, dtype, hidden_size, out_features)
    outputs = {}
    with torch.inference_mode():
        for num_tokens in (1, 3, 40):  # a decode step's one token (fused), a few, a prefill's
            x, residual = (
                random_tensor((num_tokens, hidden_size), generator).to(dtype=dtype, device=device)
                for _ in range(2)
            )
            outputs[f"norm_then_linear({num_tokens} tokens)"] = norm_then_linear(norm, linear, x.clone())
            fused, summed = norm_then_linear(norm, linear, x.clone(), residual.clone())
            outputs[f"norm_then_linear({num_tokens} tokens, residual)[0]"] = fused
            outputs[f"norm_then_linear({num_tokens} tokens, residual)[1]"] = summed
    return outputs


def _run_silu_and_mul_linear(
    generator: torch.Generator, device: torch.device, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    intermediate_size, out_features = 96, 64
    linear = _dense_linears(generator, device, dtype, intermediate_size, out_features)
    outputs = {}
    with torch.inference_mode():
        for num_tokens in (1, 3, 40):
            x = random_tensor((num_tokens, 2 * intermediate_size), generator).to(dtype=dtype, device=device)
            outputs[f"silu_and_mul_then_linear({num_tokens} tokens)"] = silu_and_mul_then_linear(
                SiluAndMul(), linear, x
            )
    return outputs


_LAYER_RUNS: dict[
    str, Callable[[torch.Generator, torch.device, torch.dtype], dict[str, torch.Tensor]]
] = {
    "rms_norm": _run_rms_norm,
    "silu_and_mul": _run_silu_and_mul,
    "rotary": _run_rotary,
    "linear": _run_linear,
    "rms_norm_linear": _run_rms_norm_linear,
    "silu_and_mul_linear": _run_silu_and_mul_linear,
}
