"""The on-disk cache of pruned decode graph sizes (tenon.worker.graph_size_cache)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tenon.worker.graph_size_cache import GraphSizeCache, graph_size_key, source_stamp

CANDIDATES = (1, 2, 4, 8, 16, 32, 48, 64)


def key(device: str = "NVIDIA H200", hidden_size: int = 4096, **config: object) -> dict[str, object]:
    hf_config = SimpleNamespace(architectures=["LlamaForCausalLM"], hidden_size=hidden_size, num_hidden_layers=32,
                                **config)
    return graph_size_key(device_name=device, hf_config=hf_config, dtype="bfloat16", attention_backend="triton",
                          block_size=16, max_model_len=4096, candidate_sizes=CANDIDATES,
                          versions={"torch": "2.11.0", "triton": "3.6.0"})


def test_kept_sizes_round_trip_and_keys_stay_apart(tmp_path: Path) -> None:
    cache = GraphSizeCache(tmp_path / "sub" / "sizes.json")
    assert cache.load(key()) is None  # no file yet
    cache.store(key(), [64, 1, 16, 48])
    cache.store(key(device="NVIDIA H100 80GB HBM3"), [1, 2, 64])
    assert cache.load(key()) == (1, 16, 48, 64)
    assert cache.load(key(device="NVIDIA H100 80GB HBM3")) == (1, 2, 64)
    assert cache.load(key(hidden_size=2048)) is None  # another model shape: prune again
    assert list((tmp_path / "sub").iterdir()) == [tmp_path / "sub" / "sizes.json"]  # no temporaries left


def test_the_key_ignores_what_does_not_shape_the_kernels() -> None:
    assert key(_name_or_path="/models/a", eos_token_id=2) == key(_name_or_path="/models/b", eos_token_id=7)
    assert key(quantization_config={"quant_method": "fp8"}) != key()


@pytest.mark.parametrize("content", [
    "not json at all",
    json.dumps(["a", "list"]),
])
def test_an_unreadable_file_is_no_entry_and_is_replaced(tmp_path: Path, content: str) -> None:
    path = tmp_path / "sizes.json"
    path.write_text(content)
    cache = GraphSizeCache(path)
    assert cache.load(key()) is None
    cache.store(key(), [1, 64])
    assert cache.load(key()) == (1, 64)


@pytest.mark.parametrize("kept", [[], [1, 2], [1, 3, 64], ["1", 64], "64"])
def test_entries_pruning_cannot_have_made_are_refused(tmp_path: Path, kept: object) -> None:
    # Pruning keeps a non-empty subset of the candidates that always holds the largest.
    cache = GraphSizeCache(tmp_path / "sizes.json")
    cache.store(key(), [1, 64])
    entries = json.loads(cache.path.read_text())
    [digest] = entries
    entries[digest]["kept"] = kept
    cache.path.write_text(json.dumps(entries))
    assert cache.load(key()) is None


def test_an_entry_under_another_key_is_refused(tmp_path: Path) -> None:
    cache = GraphSizeCache(tmp_path / "sizes.json")
    cache.store(key(), [1, 64])
    entries = json.loads(cache.path.read_text())
    [digest] = entries
    entries[digest]["key"]["device"] = "another card"  # a digest collision, or a hand edit
    cache.path.write_text(json.dumps(entries))
    assert cache.load(key()) is None


def test_source_stamp_changes_when_a_source_file_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "stamped_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    kernel = package / "kernel.py"
    kernel.write_text("BLOCK = 64\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = source_stamp(["stamped_pkg"])
    assert source_stamp(["stamped_pkg"]) == before
    kernel.write_text("BLOCK = 128\n")
    assert source_stamp(["stamped_pkg"]) != before
    assert source_stamp(["no_such_package_here"]) == source_stamp([])
