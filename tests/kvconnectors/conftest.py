"""One intra-op thread: the tensors are tiny, and the 2 shared cores run other tests too."""

from __future__ import annotations

import pytest

from tests.helpers.torch_threads import one_torch_thread  # noqa: F401 (fixture)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TENON_PLUGINS", "TENON_DISABLE_PLUGIN_AUTOLOAD"):
        monkeypatch.delenv(name, raising=False)
