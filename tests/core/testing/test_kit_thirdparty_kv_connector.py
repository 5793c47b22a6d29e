"""The kit's KV connector suite on the example SQLite connector package, installed with pip
(the Makefile does: pip install --no-deps --no-build-isolation tests/thirdparty/<package>)."""

from __future__ import annotations

import importlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tenon.testing import KVConnectorConformance


def _installed(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


sqlite_plugin = _installed("tenon_example_sqlite_kv.plugin")
needs_sqlite = pytest.mark.skipif(
    sqlite_plugin is None,
    reason="tenon-example-sqlite-kv is not installed: pip install --no-deps "
    "--no-build-isolation tests/thirdparty/tenon-example-sqlite-kv",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TENON_PLUGINS", "TENON_DISABLE_PLUGIN_AUTOLOAD"):
        monkeypatch.delenv(name, raising=False)


@needs_sqlite
class TestExampleSQLiteConnector(KVConnectorConformance):
    spec = getattr(sqlite_plugin, "SPEC", None)  # type: ignore[assignment]

    def extra_config(self, store: Path) -> dict[str, Any]:
        return {"db_path": str(store / "kv.sqlite")}

    def damage_stored_blocks(self, store: Path, how: str) -> int:
        with sqlite3.connect(store / "kv.sqlite") as connection:
            count = connection.execute("SELECT COUNT(*) FROM blocks").fetchone()[0]
            if how == "corrupt":  # the first payload byte changed
                connection.execute(
                    "UPDATE blocks SET payload = CAST(X'FF' || substr(payload, 2) AS BLOB)"
                )
            elif how == "truncate":
                connection.execute(
                    "UPDATE blocks SET payload = CAST(substr(payload, 1, length(payload) - 8) AS BLOB)"
                )
            else:
                connection.execute("DELETE FROM blocks")
        return int(count)
