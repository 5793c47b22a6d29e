"""The model loader suite: a `ModelLoader` on a checkpoint written in its format.

    from tenon.testing import ModelLoaderConformance

    class TestMyLoader(ModelLoaderConformance):
        loader_class = MyLoader
        spec = MY_SPEC                       # optional: target and engine checks

        def write_checkpoint(self, hf_model, directory):
            ...                              # save the tiny HF model in your format
            return ModelSource(path=directory)

The reference is a tiny random HF Llama. Checks: `can_load` accepts the written checkpoint and
refuses an empty directory; `load_config` gives the config back (architectures included); the
built-in Llama, filled by `load_weights`, gives HF's prefill logits; `load_tokenizer` answers
None or a tokenizer. Once installed, `LLM(path, load_format=<format>)` selects the loader.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from tenon.plugin_host.targets import import_target
from tenon.spec import ModelLoaderSpec
from tenon.spec.loader import ModelLoader, ModelSource
from tenon.spec.model import ModelBuildContext
from tenon.testing.hf_reference import (
    TINY_CONFIG,
    hf_prefill_logits,
    make_hf_model,
    random_prompts,
    save_model_dir,
)
from tenon.testing.paged_runner import prefill_logits
from tenon.testing.suite import ConformanceSuite


class ModelLoaderConformance(ConformanceSuite):
    """Set `loader_class`, override `write_checkpoint` for your format; optionally `spec`."""

    loader_class: ClassVar[type[ModelLoader]]
    spec: ClassVar[ModelLoaderSpec | None] = None

    def write_checkpoint(self, hf_model: Any, directory: Path) -> ModelSource:
        """Save `hf_model` (weights and config) in the loader's format under `directory`.
        Default: an HF directory (config.json, model.safetensors); override for your format."""
        save_model_dir(hf_model, directory)
        return ModelSource(path=directory)

    def parameters(self) -> Mapping[str, Sequence[Any]]:
        return {}

    def fixture(self) -> tuple[Any, ModelSource, ModelLoader]:
        """The HF model, its checkpoint in this format, and a loader (built once)."""

        def build() -> tuple[Any, ModelSource, ModelLoader, Any]:
            import transformers

            config = transformers.LlamaConfig(**TINY_CONFIG, num_key_value_heads=2)
            hf_model = make_hf_model(transformers.LlamaForCausalLM, config)
            directory = tempfile.TemporaryDirectory(prefix="tenon-loader-")
            source = self.write_checkpoint(hf_model, Path(directory.name))
            cache = Path(directory.name) / "cache"
            cache.mkdir(exist_ok=True)
            return hf_model, source, self.loader_class(cache_dir=cache), directory

        hf_model, source, loader, _ = self.shared("fixture", build)
        return hf_model, source, loader

    def test_spec_names_this_loader(self) -> None:
        if self.spec is None:
            pytest.skip("no `spec` set on the suite: its target is not checked")
        assert import_target(self.spec.target) is self.loader_class

    def test_can_load_its_checkpoint_only(self) -> None:
        _, source, loader = self.fixture()
        assert loader.can_load(source) is True, f"can_load refused {source}"
        with tempfile.TemporaryDirectory() as empty:
            assert loader.can_load(ModelSource(path=Path(empty))) is False

    def test_load_config_gives_the_config_back(self) -> None:
        hf_model, source, loader = self.fixture()
        config = loader.load_config(source)
        assert list(config.architectures) == ["LlamaForCausalLM"]
        for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size"):
            assert getattr(config, key) == getattr(hf_model.config, key), key

    def test_loaded_weights_reproduce_reference_logits(self) -> None:
        from tenon.plugins.models.llama import LlamaForCausalLM
        from tenon.plugins.quantization.none import NoQuantScheme

        hf_model, source, loader = self.fixture()
        config = loader.load_config(source)
        build = ModelBuildContext(
            dtype=torch.float32, device=torch.device("cpu"), quant_scheme=NoQuantScheme()
        )
        model = LlamaForCausalLM.from_config(config, build)
        loader.load_weights(model, source, config)
        prompts = random_prompts((3, 8), int(config.vocab_size), seed=4)
        for ours, prompt in zip(prefill_logits(model.eval(), prompts), prompts, strict=True):
            torch.testing.assert_close(ours, hf_prefill_logits(hf_model, prompt), atol=1e-4, rtol=0)

    def test_load_tokenizer_answers_none_or_a_tokenizer(self) -> None:
        _, source, loader = self.fixture()
        tokenizer = loader.load_tokenizer(source)
        assert tokenizer is None or callable(getattr(tokenizer, "encode", None))

    def test_engine_loads_with_it(self) -> None:
        if self.spec is None:
            pytest.skip("no `spec` set on the suite: the engine selects loaders by format")
        from tenon import LLM
        from tenon.plugin_host import load_plugins
        from tenon.spec import PluginKind

        registered = {entry.spec.name for entry in load_plugins().specs(PluginKind.MODEL_LOADER)}
        if self.spec.name not in registered:
            pytest.skip(f"loader {self.spec.name!r} is not installed (no entry point registers it)")
        load_format = self.spec.capabilities.formats[0]

        _, source, _ = self.fixture()
        llm = LLM(str(source.path), load_format=load_format, dtype="float32", log_startup=False)
        try:
            assert llm.engine.startup.slots.get("model loader") == self.spec.name
        finally:
            llm.shutdown()
