"""The database: one row per block, keyed by the block hash, with a checksum of its bytes.

    blocks(block_hash BLOB PRIMARY KEY, layout TEXT, payload BLOB, sha256 BLOB)

`layout` names the dtype and block shape; a row is trusted only when its layout matches the
reader's and the payload's sha256 matches. SQLite's transactions make a store all or nothing,
so a crash mid-store leaves no half-written row.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS blocks ("
    "block_hash BLOB PRIMARY KEY, layout TEXT NOT NULL, payload BLOB NOT NULL, sha256 BLOB NOT NULL)"
)


def connect(extra_config: Mapping[str, Any]) -> sqlite3.Connection:
    path = extra_config.get("db_path")
    if not isinstance(path, str) or not path:
        raise ValueError('example-sqlite-kv needs kv_connector_extra_config {"db_path": FILE}')
    connection = sqlite3.connect(path, timeout=30.0)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(SCHEMA)
    connection.commit()
    return connection


def contains(connection: sqlite3.Connection, block_hash: bytes) -> bool:
    row = connection.execute("SELECT 1 FROM blocks WHERE block_hash = ?", (block_hash,)).fetchone()
    return row is not None


def read(connection: sqlite3.Connection, block_hash: bytes, layout: str) -> bytes | None:
    """The block's bytes, or None when missing or not to be trusted (the row is then dropped)."""
    row = connection.execute(
        "SELECT layout, payload, sha256 FROM blocks WHERE block_hash = ?", (block_hash,)
    ).fetchone()
    if row is None:
        return None
    stored_layout, payload, checksum = row
    if stored_layout != layout or hashlib.sha256(payload).digest() != checksum:
        with connection:
            connection.execute("DELETE FROM blocks WHERE block_hash = ?", (block_hash,))
        return None
    return bytes(payload)


def write(connection: sqlite3.Connection, rows: Sequence[tuple[bytes, bytes]], layout: str) -> int:
    """Insert (block hash, payload) rows in one transaction; returns the payload bytes added."""
    written = 0
    with connection:
        for block_hash, payload in rows:
            cursor = connection.execute(
                "INSERT OR IGNORE INTO blocks VALUES (?, ?, ?, ?)",
                (block_hash, layout, payload, hashlib.sha256(payload).digest()),
            )
            written += len(payload) * cursor.rowcount
    return written
