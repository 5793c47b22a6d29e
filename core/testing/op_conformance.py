"""The kernel op suite: one implementation of one op (`tenon.spec.ops`) against Tenon's torch
reference (`tenon.layers.ops_reference`).

    from tenon.testing import OpConformance

    class TestMyRmsNorm(OpConformance):
        spec = MY_RMS_NORM_SPEC        # or: op = "rms_norm"; function = my_rms_norm
        device = "cuda"
        dtypes = ("float32", "bfloat16")  # default: the dtypes the spec declares

Every case (`tenon.testing.op_cases`) is random (seeded, no zeros) and checked in each dtype:
hidden sizes that are no multiple of a block, one token and many, rows longer than a block of
registers, inputs small enough that eps matters; large gates for silu_and_mul; rotary on key
heads viewed inside a wider qkv row and on packed heads, rotary_dim below head_size, positions
unsorted, repeated and at both ends of the table; linear on one to eight tokens and a
prefill-sized batch, sizes no multiple of a block, a K long enough to split, with and without
a bias, x strided inside wider rows, x or the weight transposed; the fused rms_norm_linear and
silu_and_mul_linear on one token and a few (`tenon.testing.op_cases_fused`, at twice the
tolerance: they may skip the intermediate's rounding). Beyond the values, the
contract: rms_norm returns (normed, x + residual) with the sum exactly the activation dtype's
and leaves x alone without a residual; silu_and_mul and linear leave their inputs alone;
rotary returns `heads` itself and writes nothing outside the first rotary_dim features of
each head. Outputs the op allocates are checked on poisoned (NaN) freed memory. Also: the
signature is the convention's, the layers (`tenon.layers`) give the reference's results with
the op installed, and on CUDA, an op that declares `supports_graphs` replays a captured graph
on refilled inputs.
"""

from __future__ import annotations

import inspect
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import pytest
import torch

from tenon.layers import ops_reference
from tenon.plugin_host.targets import import_target
from tenon.spec import OpCapabilities, OpSpec
from tenon.spec.ops import OP_NAMES
from tenon.testing.op_cases import (
    LinearCase,
    OpCase,
    OpInputs,
    RmsNormCase,
    RotaryCase,
    SiluAndMulCase,
    Tolerance,
    assert_matches,
)
from tenon.testing.op_cases_fused import RmsNormLinearCase, SiluAndMulLinearCase
from tenon.testing.op_layers import check_layer_uses_op
from tenon.testing.suite import ConformanceSuite

ALL_DTYPES = ("float32", "float16", "bfloat16")
# (atol, rtol): one or two units in the last place. The reference rounds at every step in the
# activation dtype; an implementation doing the same in float32 differs only by its reduction
# order and float32 exp/rsqrt, which flips an occasional last bit.
DEFAULT_TOLERANCES: Mapping[str, Tolerance] = {
    "float32": (1e-5, 1e-5),
    "float16": (1e-3, 2e-3),
    "bfloat16": (1e-2, 1.6e-2),
}
CASES: Mapping[str, tuple[OpCase, ...]] = {
    "rms_norm": (
        RmsNormCase(num_tokens=1, hidden_size=64, with_residual=False),
        RmsNormCase(num_tokens=1, hidden_size=64, with_residual=True),
        RmsNormCase(num_tokens=7, hidden_size=100, with_residual=False),
        RmsNormCase(num_tokens=37, hidden_size=1000, with_residual=True),
        RmsNormCase(num_tokens=3, hidden_size=4096, with_residual=True),
        RmsNormCase(num_tokens=2, hidden_size=20000, with_residual=True),
        RmsNormCase(num_tokens=5, hidden_size=96, with_residual=True, scale=1e-3, eps=1e-5),
    ),
    "silu_and_mul": (
        SiluAndMulCase(num_tokens=1, intermediate_size=8),
        SiluAndMulCase(num_tokens=7, intermediate_size=100),
        SiluAndMulCase(num_tokens=64, intermediate_size=1000),
        SiluAndMulCase(num_tokens=2, intermediate_size=14336),
        SiluAndMulCase(num_tokens=3, intermediate_size=96, scale=30.0),
    ),
    "rotary": (
        RotaryCase(num_tokens=1, num_heads=4, head_size=64, rotary_dim=64),
        RotaryCase(num_tokens=13, num_heads=8, head_size=128, rotary_dim=128),
        RotaryCase(num_tokens=5, num_heads=3, head_size=80, rotary_dim=32),
        RotaryCase(num_tokens=6, num_heads=5, head_size=96, rotary_dim=96, layout="packed"),
        RotaryCase(num_tokens=2, num_heads=40, head_size=128, rotary_dim=64, layout="packed"),
    ),
    "linear": (
        LinearCase(num_tokens=1, out_features=64, in_features=64, with_bias=False),
        LinearCase(num_tokens=1, out_features=100, in_features=72, with_bias=True),
        LinearCase(num_tokens=2, out_features=300, in_features=2100, with_bias=False),
        LinearCase(num_tokens=3, out_features=130, in_features=1000, with_bias=True),
        LinearCase(
            num_tokens=4, out_features=96, in_features=520, with_bias=True, layout="strided_x"
        ),
        LinearCase(num_tokens=8, out_features=100, in_features=72, with_bias=True),
        LinearCase(num_tokens=40, out_features=100, in_features=72, with_bias=True),
        LinearCase(
            num_tokens=2, out_features=100, in_features=72, with_bias=True,
            layout="transposed_weight",
        ),  # fmt: skip
        LinearCase(
            num_tokens=1, out_features=64, in_features=64, with_bias=False, layout="transposed_x"
        ),
    ),
    "rms_norm_linear": (
        RmsNormLinearCase(num_tokens=1, hidden_size=64, out_features=48, with_residual=False),
        RmsNormLinearCase(num_tokens=1, hidden_size=300, out_features=100, with_residual=True),
        RmsNormLinearCase(num_tokens=1, hidden_size=1000, out_features=72, with_residual=True,
                          with_bias=True),
        RmsNormLinearCase(num_tokens=3, hidden_size=100, out_features=130, with_residual=True),
        RmsNormLinearCase(num_tokens=40, hidden_size=96, out_features=64, with_residual=False),
    ),
    "silu_and_mul_linear": (
        SiluAndMulLinearCase(num_tokens=1, intermediate_size=64, out_features=48),
        SiluAndMulLinearCase(num_tokens=1, intermediate_size=1000, out_features=100),
        SiluAndMulLinearCase(num_tokens=1, intermediate_size=72, out_features=40, with_bias=True),
        SiluAndMulLinearCase(num_tokens=5, intermediate_size=100, out_features=64),
    ),
}

# Captured on one input, replayed on another of the same shape.
GRAPH_CASES: Mapping[str, tuple[OpCase, ...]] = {
    "rms_norm": (
        RmsNormCase(num_tokens=37, hidden_size=1000, with_residual=False),
        RmsNormCase(num_tokens=37, hidden_size=1000, with_residual=True),
    ),
    "silu_and_mul": (SiluAndMulCase(num_tokens=64, intermediate_size=1000),),
    "rotary": (RotaryCase(num_tokens=13, num_heads=8, head_size=128, rotary_dim=128),),
    "linear": (
        LinearCase(num_tokens=1, out_features=300, in_features=2100, with_bias=True),
        LinearCase(num_tokens=4, out_features=100, in_features=72, with_bias=False),
    ),
    "rms_norm_linear": (
        RmsNormLinearCase(num_tokens=1, hidden_size=1000, out_features=300, with_residual=True),
        RmsNormLinearCase(num_tokens=1, hidden_size=1000, out_features=300, with_residual=False),
    ),
    "silu_and_mul_linear": (
        SiluAndMulLinearCase(num_tokens=1, intermediate_size=1000, out_features=300),
    ),
}


class OpConformance(ConformanceSuite):
    """Set `spec`, or `op` and `function`; optionally `capabilities`, `device`, `dtypes`,
    `tolerances`."""

    spec: ClassVar[OpSpec | None] = None
    op: ClassVar[str | None] = None  # default: the spec's
    function: ClassVar[Callable[..., Any] | None] = None  # default: the spec's target
    capabilities: ClassVar[OpCapabilities | None] = None  # default: the spec's
    device: ClassVar[str] = "cpu"
    dtypes: ClassVar[tuple[str, ...] | None] = None  # default: those declared, of ALL_DTYPES
    tolerances: ClassVar[Mapping[str, Tolerance]] = DEFAULT_TOLERANCES

    # --- What is tested ---------------------------------------------------------------------

    def op_name(self) -> str:
        op = self.op if self.op is not None else self.declared().op
        if op not in OP_NAMES:
            raise ValueError(f"unknown op {op!r}; set `op` to one of {', '.join(OP_NAMES)}")
        return op

    def declared(self) -> OpCapabilities:
        if self.capabilities is not None:
            return self.capabilities
        if self.spec is not None:
            return self.spec.capabilities
        if self.op is None:
            raise ValueError("set `spec`, or `op` and `function`, on the suite class")
        return OpCapabilities(op=self.op)

    def implementation(self) -> Callable[..., Any]:
        # Read off the class: a plain function stored on a class would bind to the instance.
        function = type(self).function
        if function is not None:
            return function
        spec = self.spec
        if spec is None:
            raise ValueError("set `function` (or `spec`) on the suite class")
        target: Callable[..., Any] = self.shared("target", lambda: import_target(spec.target))
        return target

    def dtype_names(self) -> tuple[str, ...]:
        if self.dtypes is not None:
            return self.dtypes
        declared = self.declared().dtypes
        names = tuple(d for d in ALL_DTYPES if declared is None or d in declared)
        if not names:
            raise ValueError(f"the op declares none of the dtypes {ALL_DTYPES}")
        return names

    def parameters(self) -> Mapping[str, Sequence[Any]]:
        return {"dtype": self.dtype_names(), "case": CASES[self.op_name()]}

    def check_case(self, case: OpCase, dtype: str, seed: int | None = None) -> None:
        if seed is None:
            seed = zlib.crc32(f"{case}-{dtype}".encode())
        inputs = case.inputs(getattr(torch, dtype), torch.device(self.device), seed)
        case.check(self.implementation(), inputs, self.tolerances[dtype])

    # --- Tests ------------------------------------------------------------------------------

    def test_spec_names_this_function(self) -> None:
        if self.spec is None:
            pytest.skip("no `spec` set on the suite: its target is not checked")
        if type(self).function is not None:
            assert import_target(self.spec.target) is type(self).function, (
                f"spec {self.spec.name!r} names {self.spec.target}, which is not `function`"
            )
        assert self.spec.capabilities.op == self.op_name()

    def test_signature_is_the_convention(self) -> None:
        reference = inspect.signature(getattr(ops_reference, self.op_name()))
        try:
            signature = inspect.signature(self.implementation())
        except (TypeError, ValueError):
            pytest.skip("the implementation has no Python signature to compare")
        expected = [(p.name, p.default) for p in reference.parameters.values()]
        actual = [(p.name, p.default) for p in signature.parameters.values()]
        assert actual == expected, (
            f"{self.op_name()} must take {reference} (tenon.spec.ops), got {signature}"
        )

    def test_matches_reference(self, dtype: str, case: OpCase) -> None:
        self.check_case(case, dtype)

    def test_layers_give_the_reference_results(self, dtype: str) -> None:
        check_layer_uses_op(
            self.op_name(), self.implementation(), torch.device(self.device),
            getattr(torch, dtype), self.tolerances[dtype],
        )  # fmt: skip

    def test_graph_capture_replay(self, dtype: str) -> None:
        if not self.declared().supports_graphs:
            pytest.skip("the op does not declare supports_graphs")
        if torch.device(self.device).type != "cuda":
            pytest.skip("graph capture is checked on CUDA: set device = 'cuda' on a GPU machine")
        torch_dtype, device = getattr(torch, dtype), torch.device(self.device)
        for case in GRAPH_CASES[self.op_name()]:
            check_graph_replay(
                self.op_name(), self.implementation(), case.inputs(torch_dtype, device, 1),
                case.inputs(torch_dtype, device, 2), self.tolerances[dtype],
            )  # fmt: skip


def check_graph_replay(
    op: str,
    function: Callable[..., Any],
    captured: OpInputs,
    refill: OpInputs,
    tolerance: Tolerance,
) -> None:
    """Capture `function` on `captured`'s tensors, copy `refill`'s into them, replay, and
    compare what the captured call returned with the reference run eagerly on `refill`."""
    reference = getattr(ops_reference, op)
    expected = reference(*[_copy(arg) for arg in refill.args])
    static_args = captured.args
    side_stream = torch.cuda.Stream()
    side_stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side_stream):
        function(*static_args)  # compiles and warms up outside capture, as torch requires
    torch.cuda.current_stream().wait_stream(side_stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        result = function(*static_args)
    for static, fresh in zip(static_args, refill.args, strict=True):
        if isinstance(static, torch.Tensor):
            static.copy_(fresh)
    graph.replay()
    torch.cuda.synchronize()
    results = result if isinstance(result, tuple) else (result,)
    expectations = expected if isinstance(expected, tuple) else (expected,)
    assert len(results) == len(expectations)
    for index, (actual, wanted) in enumerate(zip(results, expectations, strict=True)):
        assert_matches(
            actual, wanted, tolerance,
            f"{op} output {index} after graph replay on refilled inputs (the op may read host "
            "copies made at capture time, or allocate by data)",
        )  # fmt: skip


def _copy(arg: Any) -> Any:
    return arg.clone() if isinstance(arg, torch.Tensor) else arg
