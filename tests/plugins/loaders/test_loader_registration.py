from __future__ import annotations

import importlib

import pluggy

from tenon.plugins.loaders import registration
from tenon.spec import PROJECT_NAME, ModelLoaderSpec, PluginKind, Requirements, hookspecs
from tenon.spec.loader import ModelLoader


def test_hook_publishes_three_loaders_with_their_formats_and_priorities() -> None:
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(registration)
    manager.check_pending()
    specs = [spec for result in manager.hook.tenon_model_loaders() for spec in result]

    summary = {spec.name: (spec.priority, spec.capabilities.formats) for spec in specs}
    assert summary == {
        "safetensors": (10, ("safetensors",)),
        "gguf": (5, ("gguf",)),
        "dummy": (0, ("dummy",)),
    }
    for spec in specs:
        assert isinstance(spec, ModelLoaderSpec)
        assert spec.kind is PluginKind.MODEL_LOADER
        module_name, _, class_name = spec.target.partition(":")
        loader_class = getattr(importlib.import_module(module_name), class_name)
        assert issubclass(loader_class, ModelLoader), spec.target
        own_format = spec.capabilities.formats[0]
        assert spec.capabilities.unmet(Requirements(load_format=own_format)) == ()
        assert spec.capabilities.unmet(Requirements(load_format="pickle")) != ()
