"""Publishes the built-in model loaders through the same entry point a third party would use."""

from __future__ import annotations

from tenon.spec import API_VERSION, LoaderCapabilities, ModelLoaderSpec, hookimpl


@hookimpl
def tenon_model_loaders() -> list[ModelLoaderSpec]:
    return [
        ModelLoaderSpec(
            name="safetensors",
            target="tenon.plugins.loaders.safetensors_loader:SafetensorsLoader",
            api_version=API_VERSION,
            priority=10,
            description="HF directory: config.json, model.safetensors or a sharded index",
            capabilities=LoaderCapabilities(formats=("safetensors",)),
        ),
        ModelLoaderSpec(
            name="gguf",
            target="tenon.plugins.loaders.gguf_loader:GGUFLoader",
            api_version=API_VERSION,
            priority=5,
            description="llama.cpp GGUF file, dequantised to float32 at load time",
            capabilities=LoaderCapabilities(formats=("gguf",)),
        ),
        ModelLoaderSpec(
            name="dummy",
            target="tenon.plugins.loaders.dummy_loader:DummyLoader",
            api_version=API_VERSION,
            priority=0,
            description="seeded random weights from a config.json (benchmarks, tests)",
            capabilities=LoaderCapabilities(formats=("dummy",)),
        ),
    ]
