"""The Triton ops' registration: one spec per op above the reference, for CUDA and ROCm, whose
targets are the wrappers, from a module that imports neither torch nor triton."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pluggy

from tenon.plugins.ops import registration, triton_registration
from tenon.spec import API_VERSION, PROJECT_NAME, OpSpec, Requirements, hookspecs
from tenon.spec.ops import OP_NAMES


def registered_specs() -> dict[str, OpSpec]:
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(registration)
    manager.register(triton_registration)
    return {spec.name: spec for specs in manager.hook.tenon_ops() for spec in specs}


def test_one_spec_per_op_above_the_reference() -> None:
    specs = registered_specs()
    stems = ["rms-norm", "silu-and-mul", "rotary", "linear", "rms-norm-linear",
             "silu-and-mul-linear"]
    triton_names = [f"triton-{stem}" for stem in stems]
    assert sorted(specs) == sorted([*(f"torch-{stem}" for stem in stems), *triton_names])
    for op, name in zip(OP_NAMES, triton_names, strict=True):
        spec, reference = specs[name], specs[f"torch-{op.replace('_', '-')}"]
        assert (spec.capabilities.op, spec.priority, spec.api_version) == (op, 10, API_VERSION)
        assert spec.priority > reference.priority
        assert spec.target == f"tenon.plugins.ops.triton_kernels.{op}:{op}"


def test_targets_are_the_wrappers() -> None:
    for spec in triton_registration.tenon_ops():
        module_name, _, qualname = spec.target.partition(":")
        module = importlib.import_module(module_name)
        assert getattr(module, qualname).__module__ == module_name


def test_capabilities_fit_gpus_in_their_dtypes_with_graphs_and_nothing_else() -> None:
    for spec in triton_registration.tenon_ops():
        op, capabilities = spec.capabilities.op, spec.capabilities
        # The GEMVs serve 16-bit decode; a float32 engine keeps torch's linears.
        linear_op = op.endswith("linear")
        dtypes = ("float16", "bfloat16") if linear_op else ("float32", "float16", "bfloat16")
        assert capabilities.dtypes == dtypes
        for device_type in ("cuda", "rocm"):
            for dtype in dtypes:
                wanted = Requirements(
                    op=op, device_type=device_type, dtype=dtype, needs_graphs=True
                )
                assert capabilities.unmet(wanted) == ()
        float32 = Requirements(op=op, device_type="cuda", dtype="float32")
        assert (capabilities.unmet(float32) == ()) == (not linear_op)
        assert capabilities.unmet(Requirements(op=op, device_type="cpu")) == (
            "device type cpu not supported (supports: cuda, rocm)",
        )
        assert capabilities.unmet(Requirements(op=op, dtype="float8_e4m3fn")) != ()
        other = next(name for name in OP_NAMES if name != op)
        assert capabilities.unmet(Requirements(op=other)) != ()


def test_registration_imports_neither_torch_nor_triton() -> None:
    code = (
        "import sys, tenon.plugins.ops.triton_registration as r; r.tenon_ops(); "
        "print(sorted(m for m in ('torch', 'triton') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
