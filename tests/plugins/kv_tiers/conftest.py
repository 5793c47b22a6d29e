"""Fixtures for the KV tier tests: block shapes, a tiny Llama with a long context, and the
offloading plugin registered for engines built here (until its entry point is installed)."""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tenon.startup.engine_builder as engine_builder
from tenon.plugin_host import StaticEntryPoint, load_plugins
from tenon.spec import ENTRY_POINT_GROUP
from tests.helpers.tiny_model import make_tiny_model_dir
from tests.helpers.torch_threads import one_torch_thread  # noqa: F401 (fixture)
from tests.plugins.kv_tiers.kv_blocks import SHAPES

REGISTRATION = "tenon.plugins.kv_tiers.registration"
MAX_POSITION_EMBEDDINGS = 2304


@pytest.fixture(params=sorted(SHAPES))
def shape(request: pytest.FixtureRequest) -> tuple[int, ...]:
    return SHAPES[request.param]


@pytest.fixture(scope="session")
def long_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tests' tiny random Llama with room for a 2,000-token prompt (default RoPE)."""
    path = make_tiny_model_dir(tmp_path_factory.mktemp("tiny-llama-long"), "llama")
    config = json.loads((path / "config.json").read_text())
    config["max_position_embeddings"] = MAX_POSITION_EMBEDDINGS
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def offloading_plugin() -> Iterator[None]:
    """Engines built in the module load the kv_tiers plugin as a built-in, whether or not its
    entry point is installed yet."""
    from tenon.plugins.kv_tiers import registration

    def load_with_kv_tiers(**options: Any) -> Any:
        installed = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
        if not any(getattr(ep, "value", None) == REGISTRATION for ep in installed):
            installed.append(
                StaticEntryPoint(name="kv-tiers", loader=lambda: registration,
                                 distribution="tenon", value=REGISTRATION)
            )
        return load_plugins(entry_points=installed, **options)

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(engine_builder, "load_plugins", load_with_kv_tiers)
        yield


