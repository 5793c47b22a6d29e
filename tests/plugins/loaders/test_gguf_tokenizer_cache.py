"""The GGUF tokenizer: converted once by transformers, cached, and read back identically."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tenon.plugins.loaders import gguf_tokenizer
from tenon.plugins.loaders.gguf_loader import GGUFLoader
from tenon.plugins.loaders.gguf_tokenizer import CACHE_MARKER_FILE_NAME, tokenizer_cache_key
from tenon.spec.loader import ModelSource

TEXTS = (
    "Hello world!",
    "  leading spaces, tabs\tand\nnewlines\n\n",
    "Café naïve Straße — 日本語のテキスト 😀🚀 ¿Dónde?",
    "def f(x):\n    return x ** 2  # code",
    "<|im_start|>user\nhi<|im_end|>",
)
MESSAGES = [
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy?"},
]


def assert_same_tokenizer(ours: Any, reference: Any) -> None:
    for text in TEXTS:
        ids = ours(text).input_ids
        assert ids == reference(text).input_ids, text
        assert ours.decode(ids) == reference.decode(ids), text
        assert ours.decode(ids, skip_special_tokens=True) == reference.decode(
            ids, skip_special_tokens=True
        ), text
    assert ours.chat_template == reference.chat_template
    prompt = ours.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert prompt == reference.apply_chat_template(
        MESSAGES, tokenize=False, add_generation_prompt=True
    )
    assert ours(prompt).input_ids == reference(prompt).input_ids
    assert (ours.bos_token_id, ours.eos_token_id, ours.pad_token_id) == (
        reference.bos_token_id,
        reference.eos_token_id,
        reference.pad_token_id,
    )
    assert len(ours) == len(reference)


def forbid_conversion(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(gguf_path: Path) -> Any:
        raise AssertionError(f"the tokenizer of {gguf_path} was converted again")

    monkeypatch.setattr(gguf_tokenizer, "convert_gguf_tokenizer", fail)


def entry_dir(cache_root: Path, gguf_path: Path) -> Path:
    return cache_root / "tokenizers" / tokenizer_cache_key(gguf_path)


@pytest.mark.slow
def test_first_load_converts_once_and_matches_transformers(tokenizer_conversion: Any) -> None:
    assert tokenizer_conversion.num_conversions == 1
    assert_same_tokenizer(tokenizer_conversion.first_load, tokenizer_conversion.reference)
    prompt = tokenizer_conversion.first_load.apply_chat_template(
        MESSAGES[:1], tokenize=False, add_generation_prompt=True
    )
    assert prompt.startswith("<|im_start|>system\n")
    assert prompt.endswith(
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.mark.slow
def test_second_load_reads_the_cache_without_converting(
    tokenizer_conversion: Any, default_gguf_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forbid_conversion(monkeypatch)
    entry = entry_dir(tokenizer_conversion.cache_root, default_gguf_path)
    assert (entry / CACHE_MARKER_FILE_NAME).is_file()
    assert (entry / "tokenizer.json").is_file()
    loader = GGUFLoader(cache_dir=tokenizer_conversion.cache_root)
    tokenizer = loader.load_tokenizer(ModelSource(path=default_gguf_path))
    assert_same_tokenizer(tokenizer, tokenizer_conversion.reference)


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["garbage_tokenizer_json", "no_marker", "empty_dir"])
def test_a_damaged_cache_entry_is_rebuilt(
    tokenizer_conversion: Any,
    default_gguf_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    damage: str,
) -> None:
    cache_root = tmp_path / "cache"
    entry = entry_dir(cache_root, default_gguf_path)
    shutil.copytree(entry_dir(tokenizer_conversion.cache_root, default_gguf_path), entry)
    if damage == "garbage_tokenizer_json":
        (entry / "tokenizer.json").write_text("{ not json")
    elif damage == "no_marker":
        (entry / CACHE_MARKER_FILE_NAME).unlink()
    else:
        shutil.rmtree(entry)
        entry.mkdir()
    # Rebuild from the session's converted tokenizer instead of converting again (slow).
    conversions: list[Path] = []

    def convert(gguf_path: Path) -> Any:
        conversions.append(gguf_path)
        return tokenizer_conversion.reference

    monkeypatch.setattr(gguf_tokenizer, "convert_gguf_tokenizer", convert)
    tokenizer = GGUFLoader(cache_dir=cache_root).load_tokenizer(ModelSource(path=default_gguf_path))

    assert conversions == [default_gguf_path]
    assert_same_tokenizer(tokenizer, tokenizer_conversion.reference)
    json.loads((entry / "tokenizer.json").read_text())
    assert (entry / CACHE_MARKER_FILE_NAME).is_file()
    assert [path.name for path in entry.parent.iterdir()] == [entry.name]  # no staging leftovers


def test_cache_key_follows_content_not_name(tmp_path: Path) -> None:
    first = tmp_path / "a.gguf"
    first.write_bytes(bytes(range(256)) * 100)
    copy = tmp_path / "renamed.gguf"
    shutil.copyfile(first, copy)
    assert tokenizer_cache_key(copy) == tokenizer_cache_key(first)
    changed = tmp_path / "changed.gguf"
    changed.write_bytes(b"\x01" + (bytes(range(256)) * 100)[1:])
    assert tokenizer_cache_key(changed) != tokenizer_cache_key(first)
    longer = tmp_path / "longer.gguf"
    longer.write_bytes(bytes(range(256)) * 101)
    assert tokenizer_cache_key(longer) != tokenizer_cache_key(first)
