"""The tokenizer of a GGUF file, converted by transformers once and cached on disk.

Converting the GGUF vocabulary into an HF tokenizer takes seconds to half a minute, so the
result is saved with `save_pretrained` and later loads read it back:

    <cache_root>/tokenizers/<key>/     key = sha256(cache format, transformers version,
      tokenizer.json                               file size, first 8 MiB of the file)
      tokenizer_config.json            The first MiBs hold all metadata (the tokenizer and the
      chat_template.jinja              chat template among it), so the key changes with them.
      tenon_cache.json                 written last: a directory without it is incomplete

A cache entry is built in a temporary sibling directory and renamed into place, so a reader
never sees half an entry, and two processes converting at once leave one complete entry.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

CACHE_FORMAT_VERSION = "1"
CACHE_MARKER_FILE_NAME = "tenon_cache.json"
_KEY_HEAD_BYTES = 8 * 1024 * 1024


def tokenizer_cache_key(gguf_path: Path) -> str:
    import transformers

    digest = hashlib.sha256()
    size_bytes = gguf_path.stat().st_size
    digest.update(f"{CACHE_FORMAT_VERSION}|{transformers.__version__}|{size_bytes}|".encode())
    with gguf_path.open("rb") as file:
        digest.update(file.read(_KEY_HEAD_BYTES))
    return digest.hexdigest()


def convert_gguf_tokenizer(gguf_path: Path) -> Any:
    """The slow part: transformers builds a tokenizer from the GGUF vocabulary and merges."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, local_files_only=True
    )
    if getattr(tokenizer, "chat_template", None) is None:
        # transformers copies the template today; read it ourselves if that ever changes
        from gguf import GGUFReader, Keys

        field = GGUFReader(gguf_path).get_field(Keys.Tokenizer.CHAT_TEMPLATE)
        if field is not None:
            tokenizer.chat_template = field.contents()
    return tokenizer


def read_cached_tokenizer(entry_dir: Path) -> Any | None:
    """The tokenizer saved in `entry_dir`, or None when absent; a broken entry is removed."""
    if not entry_dir.exists():
        return None
    if (entry_dir / CACHE_MARKER_FILE_NAME).is_file():
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(str(entry_dir), local_files_only=True)
        except Exception as error:  # any failure to read a cache entry means: rebuild it
            print(
                f"tenon: rebuilding unreadable tokenizer cache {entry_dir} ({error})",
                file=sys.stderr,
            )
    shutil.rmtree(entry_dir, ignore_errors=True)
    return None


def write_cache_entry(tokenizer: Any, entry_dir: Path, gguf_path: Path) -> None:
    entry_dir.parent.mkdir(parents=True, exist_ok=True)
    staging_dir = Path(tempfile.mkdtemp(prefix=f".{entry_dir.name}.", dir=entry_dir.parent))
    try:
        tokenizer.save_pretrained(str(staging_dir))
        marker = {"source_file": gguf_path.name, "source_size_bytes": gguf_path.stat().st_size}
        (staging_dir / CACHE_MARKER_FILE_NAME).write_text(json.dumps(marker))
        try:
            staging_dir.rename(entry_dir)
        except OSError:
            if not (entry_dir / CACHE_MARKER_FILE_NAME).is_file():
                raise
            # another process finished the same entry first: keep theirs
    finally:
        shutil.rmtree(staging_dir, ignore_errors=True)


def load_gguf_tokenizer(gguf_path: Path, cache_root: Path) -> Any:
    """The file's tokenizer (with its chat template), from the cache or converted into it."""
    entry_dir = cache_root / "tokenizers" / tokenizer_cache_key(gguf_path)
    cached = read_cached_tokenizer(entry_dir)
    if cached is not None:
        return cached
    print(
        f"tenon: converting the GGUF tokenizer once (about 30 s); cached at {entry_dir}",
        file=sys.stderr,
        flush=True,
    )
    write_cache_entry(convert_gguf_tokenizer(gguf_path), entry_dir, gguf_path)
    # Read back what was saved so the first run behaves exactly like every later one.
    tokenizer = read_cached_tokenizer(entry_dir)
    if tokenizer is None:
        raise RuntimeError(f"the tokenizer converted from {gguf_path} could not be read back")
    return tokenizer
