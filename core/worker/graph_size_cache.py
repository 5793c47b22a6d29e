"""Decode graph sizes pruned at an earlier start-up, kept on disk for the next one.

Pruning (`decode_graphs.keep_fastest_sizes`) captures every default size and times a replay of
each: on an H200 the 8B model's graphs phase went from 1.1 s to 5.6 s with it. What pruning
keeps depends on the card, the model's shapes, the kernels (library versions, Tenon's own
sources, attention backend, block size, max model len) and the candidate sizes, and on nothing
a request does; so a later start-up with the same key captures the kept sizes straight away. A missing,
unreadable or mismatched entry means pruning again; a stale entry can cost speed (a size a
fresh timing would drop), never correctness. Delete the file (`TENON_CACHE_DIR`, default
~/.cache/tenon) to prune afresh.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

FILE_NAME = "decode_graph_sizes.json"
# The config fields that shape a decoder's kernels; anything else (paths, token ids) does not.
MODEL_SHAPE_FIELDS = (
    "architectures", "hidden_size", "intermediate_size", "moe_intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size", "num_experts",
    "num_experts_per_tok", "n_routed_experts", "kv_lora_rank", "q_lora_rank", "tie_word_embeddings",
    "quantization_config",
)


# Tenon's packages whose sources hold kernels and the code around them.
SOURCE_PACKAGES = ("tenon", "tenon.plugins", "tenon.spec", "tenon_cuda")


def source_stamp(packages: Sequence[str] = SOURCE_PACKAGES) -> str:
    """A digest of the packages' Python files (path, size, modification time): an edited kernel
    changes it, so pruning runs again for it (stat calls only; no file is read)."""
    digest = hashlib.sha256()
    roots = []
    for name in packages:
        with contextlib.suppress(ImportError, ValueError):
            spec = importlib.util.find_spec(name)
            roots += list(spec.submodule_search_locations or []) if spec is not None else []
    for root in sorted(set(roots)):
        for path in sorted(Path(root).rglob("*.py")):
            stat = path.stat()
            digest.update(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()


def graph_size_key(*, device_name: str, hf_config: Any, dtype: str, attention_backend: str, block_size: int,
                   max_model_len: int, candidate_sizes: Sequence[int], versions: Mapping[str, str]) -> dict[str, Any]:
    """Everything pruning's outcome depends on, as a JSON-able record."""
    shape = {name: getattr(hf_config, name) for name in MODEL_SHAPE_FIELDS if getattr(hf_config, name, None) is not None}
    return {
        "device": device_name, "model": shape, "dtype": dtype, "attention_backend": attention_backend,
        "block_size": block_size, "max_model_len": max_model_len, "candidate_sizes": list(candidate_sizes),
        "versions": dict(sorted(versions.items())),
    }


def _as_json(key: Mapping[str, Any]) -> Any:
    """`key` as it reads back from the file (tuples as lists, other values as strings)."""
    return json.loads(json.dumps(key, default=str))


def _digest(key: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


class GraphSizeCache:
    """One JSON file of {digest: {"key": ..., "kept": [...]}} entries."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, key: Mapping[str, Any]) -> tuple[int, ...] | None:
        """The sizes kept for `key`, or None when there is no valid entry."""
        entry = self._entries().get(_digest(key))
        if not isinstance(entry, dict) or entry.get("key") != _as_json(key):
            return None
        kept = entry.get("kept")
        candidates = set(key["candidate_sizes"])
        if (not isinstance(kept, list) or not kept or not all(isinstance(size, int) for size in kept)
                or not set(kept) <= candidates or max(kept) != max(candidates)):
            return None  # pruning always keeps the largest candidate: anything else is not ours
        return tuple(sorted(kept))

    def store(self, key: Mapping[str, Any], kept: Sequence[int]) -> None:
        """Record `kept` for `key`; the file is replaced whole, so a reader never sees half."""
        entries = self._entries()
        entries[_digest(key)] = {"key": _as_json(key), "kept": sorted(kept)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        try:
            with os.fdopen(descriptor, "w") as file:
                json.dump(entries, file, indent=1, sort_keys=True)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def _entries(self) -> dict[str, Any]:
        try:
            entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return entries if isinstance(entries, dict) else {}
