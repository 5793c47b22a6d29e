"""`tenon chat`: stdin lines are user turns; the conversation is kept between turns."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tenon.cli.main import main
from tenon.frontend.llm import LLM
from tests.helpers.tiny_model import make_tiny_model_dir


def test_chat_keeps_the_conversation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    model_dir = make_tiny_model_dir(tmp_path / "tiny", "llama")
    seen: list[list[dict[str, str]]] = []
    real_chat = LLM.chat

    def recording_chat(self: LLM, messages, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append([dict(m) for m in messages])
        return real_chat(self, messages, *args, **kwargs)

    monkeypatch.setattr(LLM, "chat", recording_chat)
    monkeypatch.setattr("sys.stdin", io.StringIO("hello there\n\nand again\n"))
    assert main(["chat", "--model", str(model_dir), "--dtype", "float32", "--max-tokens", "5",
                 "--system", "be brief"]) == 0
    assert [m["role"] for m in seen[0]] == ["system", "user"]
    assert [m["role"] for m in seen[1]] == ["system", "user", "assistant", "user"]
    assert seen[1][1]["content"] == "hello there" and seen[1][3]["content"] == "and again"
    printed = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(printed) >= 1
