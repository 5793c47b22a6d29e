"""`tenon generate` on the default model, as the README's set-up leaves it."""

from __future__ import annotations

import pytest

from tenon.cli.main import main

pytestmark = [pytest.mark.slow, pytest.mark.default_model]


def test_generate_names_paris(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "What is the capital of France?", "--max-tokens", "32"]) == 0
    assert "Paris" in capsys.readouterr().out


def test_generate_raw_completion_without_chat_template(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "The capital of France is", "--no-chat-template", "--max-tokens", "8"]) == 0
    assert capsys.readouterr().out.strip()
