"""`SharedStorageConnector` through the kit's KV connector suite, with its own damage hook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tenon.testing import KVConnectorConformance
from tenon_kvconnectors.registration import SHARED_STORAGE_SPEC
from tenon_kvconnectors.shared_storage.block_file import SUFFIX


def damage_block_files(store: Path, how: str) -> int:
    """Damage every block file under `store`; returns how many."""
    paths = sorted(store.rglob(f"*{SUFFIX}"))
    for path in paths:
        data = path.read_bytes()
        if how == "corrupt":  # flip one payload byte near the end
            flipped = bytes([data[-5] ^ 0xFF])
            path.write_bytes(data[:-5] + flipped + data[-4:])
        elif how == "truncate":
            path.write_bytes(data[: len(data) - 7])
        else:
            path.unlink()
    return len(paths)


class TestSharedStorageConnector(KVConnectorConformance):
    spec = SHARED_STORAGE_SPEC

    def extra_config(self, store: Path) -> dict[str, Any]:
        return {"shared_storage_path": str(store)}

    def damage_stored_blocks(self, store: Path, how: str) -> int:
        return damage_block_files(store, how)
