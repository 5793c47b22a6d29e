"""The start-up's graphs phase: pruning once, then the kept sizes from the cache."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tenon.startup.graph_capture import capture_decode_graphs
from tenon.startup.phases import StartupLog
from tenon.worker.graph_size_cache import GraphSizeCache


class FakeRunner:
    """Records what it was asked to capture; pruning keeps every other size and the largest."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[int, ...], bool]] = []
        self.graphs: SimpleNamespace | None = None

    def capture_graphs(self, platform: object, sizes: Sequence[int], *, prune_slower: bool = False) -> float:
        sizes = tuple(sizes)
        self.calls.append((sizes, prune_slower))
        kept = tuple(sorted(set(sizes[::2]) | {sizes[-1]})) if prune_slower else sizes
        self.graphs = SimpleNamespace(sizes=kept, dropped_sizes=tuple(s for s in sizes if s not in kept))
        return 0.0


PLATFORM = SimpleNamespace(inference_mode=contextlib.nullcontext)
HF_CONFIG = SimpleNamespace(architectures=["LlamaForCausalLM"], hidden_size=64, num_hidden_layers=2)


def config() -> SimpleNamespace:
    return SimpleNamespace(scheduler=SimpleNamespace(max_num_seqs=64), model=SimpleNamespace(dtype="bfloat16",
                           max_model_len=256), cache=SimpleNamespace(block_size=16), cuda_graph_sizes=None)


def start(cuda_graph_sizes: list[int] | None = None) -> tuple[FakeRunner, StartupLog, SimpleNamespace]:
    runner, log, engine_config = FakeRunner(), StartupLog(echo=None), config()
    capture_decode_graphs(log, runner, PLATFORM, torch.device("cpu"), SimpleNamespace(cuda_graph_sizes=cuda_graph_sizes),
                          engine_config, HF_CONFIG, "triton")  # type: ignore[arg-type]
    return runner, log, engine_config


def test_the_second_start_captures_the_kept_sizes_without_timing(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENON_CACHE_DIR", str(tmp_path))
    first, first_log, first_config = start()
    [(candidates, pruned)] = first.calls
    assert pruned and candidates == (1, 2, 4, 8, 16, 32, 48, 64)
    assert first_config.cuda_graph_sizes == (1, 4, 16, 48, 64)
    assert any(note.startswith("dropped decode graph sizes 2, 8, 32") for note in first_log.notes)
    second, second_log, second_config = start()
    assert second.calls == [((1, 4, 16, 48, 64), False)]
    assert second_config.cuda_graph_sizes == (1, 4, 16, 48, 64)
    assert any("pruned at an earlier start-up" in note and "5 of 8 kept" in note for note in second_log.notes)


def test_sizes_the_user_names_are_neither_pruned_nor_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENON_CACHE_DIR", str(tmp_path))
    runner, _, engine_config = start(cuda_graph_sizes=[8, 1, 4])
    assert runner.calls == [((1, 4, 8), False)]
    assert engine_config.cuda_graph_sizes == (1, 4, 8)
    assert not (tmp_path / "decode_graph_sizes.json").exists()


def test_an_unwritable_cache_costs_a_note_not_the_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENON_CACHE_DIR", str(tmp_path))

    def refuse(self: GraphSizeCache, key: object, kept: object) -> None:
        raise PermissionError(f"read-only: {self.path}")

    monkeypatch.setattr(GraphSizeCache, "store", refuse)
    runner, log, _ = start()
    assert runner.calls[0][1] is True
    assert any(note.startswith("could not keep the pruned graph sizes") for note in log.notes)
