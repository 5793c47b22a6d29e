"""The start-up heap is frozen out of the garbage collector's way while an engine runs, given
back when it shuts down, and the process still exits cleanly."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

from tenon import LLM, SamplingParams
from tests.helpers.tiny_model import make_tiny_model_dir

REPO = Path(__file__).resolve().parents[3]


def test_engine_freezes_its_startup_heap_and_shutdown_releases_it(tmp_path: Path) -> None:
    gc.unfreeze()
    llm = LLM(str(make_tiny_model_dir(tmp_path, "llama")), dtype="float32", log_startup=False)
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 1000, "the engine's modules and tables should be frozen"
        assert any("froze" in note and "garbage collector" in note for note in llm.engine.startup.notes)
        # Requests keep working; nothing they allocate is frozen (frozen objects may still be
        # freed by reference counting, so the count can only fall).
        output = llm.generate([{"prompt_token_ids": [1, 2, 3]}], SamplingParams(max_tokens=2, ignore_eos=True))
        assert len(output[0].outputs[0].token_ids) == 2
        assert gc.get_freeze_count() <= frozen
    finally:
        llm.shutdown()
    assert gc.get_freeze_count() == 0


def test_process_exits_cleanly_with_an_engine_alive(tmp_path: Path) -> None:
    model_dir = make_tiny_model_dir(tmp_path, "llama")
    script = (
        "from tenon import LLM\n"
        f"llm = LLM({str(model_dir)!r}, dtype='float32', log_startup=False)\n"
        "print('started')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "started" in done.stdout
    assert "leaked" not in done.stderr, done.stderr[-2000:]
