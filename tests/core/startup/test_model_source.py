"""`--load-format auto` asks each loader's `can_load`, highest priority first."""

from __future__ import annotations

import importlib.metadata
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from tenon.plugin_host import StaticEntryPoint, load_plugins
from tenon.spec import API_VERSION, LoaderCapabilities, ModelLoaderSpec, hookimpl
from tenon.spec.loader import ModelLoader, ModelSource
from tenon.startup.model_source import select_loader


class TxtLoader(ModelLoader):
    def can_load(self, source: ModelSource) -> bool:
        return (source.path / "weights.txt").exists()

    def load_config(self, source: ModelSource) -> Any:
        raise AssertionError("not called here")

    def load_weights(self, model: Any, source: ModelSource, config: Any) -> None:
        raise AssertionError("not called here")

    def load_tokenizer(self, source: ModelSource) -> Any:
        return None


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    module = types.ModuleType("txt_loader_plugin")
    module.TxtLoader = TxtLoader  # type: ignore[attr-defined]

    @hookimpl
    def tenon_model_loaders() -> list[ModelLoaderSpec]:
        return [ModelLoaderSpec(name="txt", target="txt_loader_plugin:TxtLoader", api_version=API_VERSION,
                                priority=1, capabilities=LoaderCapabilities(formats=("txt",)))]

    module.tenon_model_loaders = tenon_model_loaders  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "txt_loader_plugin", module)
    installed = list(importlib.metadata.entry_points(group="tenon.plugins"))
    builtins = [ep for ep in installed if ep.dist is not None and ep.dist.name == "tenon"]
    extra = StaticEntryPoint(name="txt-loader", loader=lambda: module, distribution="txt-loader")
    return load_plugins(entry_points=[*builtins, extra], environ={})


def test_auto_picks_the_first_loader_by_priority_that_can_load(host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "weights.txt").write_text("1 2 3")
    loader_class, load_format, decision = select_loader(host, ModelSource(path=tmp_path), "auto")
    assert loader_class is TxtLoader and load_format == "txt" and decision.chosen.name == "txt"

    (tmp_path / "weights.txt").unlink()
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "config.json").write_text("{}")
    loader_class, load_format, _ = select_loader(host, ModelSource(path=tmp_path), "auto")
    assert load_format == "safetensors"


def test_auto_with_nothing_readable_names_the_loaders_asked(host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=r"no model loader can read .*asked: safetensors, gguf, txt, dummy"):
        select_loader(host, ModelSource(path=tmp_path), "auto")


def test_an_explicit_format_selects_by_capability(host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    loader_class, load_format, _ = select_loader(host, ModelSource(path=tmp_path), "txt")
    assert loader_class is TxtLoader and load_format == "txt"
