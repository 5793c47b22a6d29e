"""Tokenizers that live beside a checkpoint in an HF-style directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TOKENIZER_FILE_NAMES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def has_tokenizer_files(directory: Path) -> bool:
    return any((directory / name).is_file() for name in TOKENIZER_FILE_NAMES)


def load_directory_tokenizer(directory: Path) -> Any | None:
    """`AutoTokenizer` from the directory's own files, or None when it has none."""
    if not directory.is_dir() or not has_tokenizer_files(directory):
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
