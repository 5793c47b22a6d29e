"""The model architecture suite: a `ModelArchitecture` against HF transformers.

    import transformers
    from tenon.testing import ModelArchitectureConformance

    class TestMyModel(ModelArchitectureConformance):
        architecture_class = MyModelForCausalLM
        hf_model_class = transformers.MyModelForCausalLM
        hf_config_overrides = {"num_key_value_heads": 2}   # on top of a tiny config

A tiny random HF model (float32, eager attention) is the reference. Unit level, through
`tenon.testing.paged_runner` (real KV cache layout, shuffled blocks, the reference backend):
every checkpoint weight loads and every parameter is filled; prefill logits and greedy tokens
of several prompts batched together equal HF's; chunked prefill changes nothing. Engine level,
through `tenon.LLM` on a saved checkpoint, once the plugin is installed (its entry point
selects `architecture_class` for the HF architecture name): batched, alone and chunked-prefill
greedy tokens equal HF's, and a prefix-cache hit reports `num_cached_tokens` and changes
nothing.

No HF class? Override `make_reference()` to return golden tokens and logits from a file.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest
import torch

from tenon.plugin_host.targets import import_target
from tenon.spec import ModelSpec
from tenon.spec.model import ModelArchitecture, ModelBuildContext
from tenon.testing import engine_checks
from tenon.testing.hf_reference import (
    TINY_CONFIG,
    hf_greedy,
    hf_prefill_logits,
    make_hf_model,
    random_prompts,
    save_model_dir,
)
from tenon.testing.paged_runner import greedy_generate, prefill_logits
from tenon.testing.suite import ConformanceSuite


@attrs.frozen(kw_only=True)
class ModelReference:
    """What the model is compared with: the reference's checkpoint and its outputs."""

    hf_config: Any  # what `from_config` receives
    state_dict: Mapping[str, torch.Tensor]  # checkpoint names and tensors, HF layout
    prompts: list[list[int]]
    greedy_tokens: list[list[int]]  # per prompt, `max_new_tokens` ids
    prefill_logits: list[torch.Tensor]  # per prompt, float32 [prompt_len, vocab_size]
    prefix_prompts: tuple[list[int], list[int]]  # share 4 blocks of `block_size` tokens
    prefix_greedy_tokens: list[int]  # the greedy tokens of prefix_prompts[1]
    save: Any  # save(path) writes a checkpoint directory the engine loads


class ModelArchitectureConformance(ConformanceSuite):
    """Set `architecture_class` and `hf_model_class`; optionally `hf_config_overrides`,
    `spec`, the prompt shape, or override `make_hf_config` / `make_reference`."""

    architecture_class: ClassVar[type[ModelArchitecture]]
    hf_model_class: ClassVar[Any] = None
    hf_config_overrides: ClassVar[Mapping[str, Any]] = {}
    spec: ClassVar[ModelSpec | None] = None
    prompt_lens: ClassVar[tuple[int, ...]] = (1, 6, 13)
    max_new_tokens: ClassVar[int] = 8
    block_size: ClassVar[int] = 4
    logits_atol: ClassVar[float] = 1e-4
    seed: ClassVar[int] = 0

    # --- The reference (override for golden outputs) -----------------------------------------

    def make_hf_config(self) -> Any:
        return self.hf_model_class.config_class(**{**TINY_CONFIG, **self.hf_config_overrides})

    def make_reference(self) -> ModelReference:
        if self.hf_model_class is None:
            raise ValueError(
                f"{type(self).__name__} needs `hf_model_class` (a transformers model class), "
                "or an override of make_reference() that returns golden outputs"
            )
        hf_model = make_hf_model(self.hf_model_class, self.make_hf_config(), seed=self.seed)
        vocab_size = int(hf_model.config.vocab_size)
        prompts = random_prompts(self.prompt_lens, vocab_size, seed=self.seed + 1)
        shared = random_prompts((4 * self.block_size + 2,), vocab_size, seed=self.seed + 2)[0]
        prefix_prompts = (shared + [5, 6, 7], shared + [9, 10])
        return ModelReference(
            hf_config=hf_model.config,
            state_dict=hf_model.state_dict(),
            prompts=prompts,
            greedy_tokens=[hf_greedy(hf_model, p, self.max_new_tokens) for p in prompts],
            prefill_logits=[hf_prefill_logits(hf_model, p) for p in prompts],
            prefix_prompts=prefix_prompts,
            prefix_greedy_tokens=hf_greedy(hf_model, prefix_prompts[1], self.max_new_tokens),
            save=lambda path: save_model_dir(hf_model, path),
        )

    def reference(self) -> ModelReference:
        return self.shared("reference", self.make_reference)

    def architecture_name(self) -> str:
        architectures = getattr(self.reference().hf_config, "architectures", None)
        return architectures[0] if architectures else self.hf_model_class.__name__

    def build(self) -> Any:
        """Our model from the reference's config, float32 on the CPU, weights not loaded."""
        from tenon.plugins.quantization.none import NoQuantScheme

        build = ModelBuildContext(
            dtype=torch.float32,
            device=torch.device("cpu"),
            quant_scheme=NoQuantScheme.from_config(None),
        )
        return self.architecture_class.from_config(self.reference().hf_config, build)

    def loaded(self) -> Any:
        def build_and_load() -> Any:
            model = self.build()
            model.load_weights(self.reference().state_dict.items())
            return model.eval()

        return self.shared("loaded_model", build_and_load)

    def model_dir(self) -> Path:
        def save() -> tempfile.TemporaryDirectory[str]:
            directory = tempfile.TemporaryDirectory(prefix="tenon-conformance-")
            self.reference().save(Path(directory.name))
            return directory

        return Path(self.shared("model_dir", save).name)

    # --- Unit level ---------------------------------------------------------------------------

    def test_spec_names_this_architecture(self) -> None:
        if self.spec is None:
            pytest.skip("no `spec` set on the suite: its target is not checked")
        assert import_target(self.spec.target) is self.architecture_class, (
            f"spec {self.spec.name!r} names {self.spec.target}, not {self.architecture_class}"
        )
        name = self.architecture_name()
        assert name in self.spec.capabilities.architectures, (
            f"the reference checkpoint's architecture {name!r} is not among the spec's "
            f"{self.spec.capabilities.architectures}"
        )

    def test_reference_is_not_degenerate(self) -> None:
        tokens = self.reference().greedy_tokens
        distinct = {token for row in tokens for token in row}
        assert len(distinct) > self.max_new_tokens // 2 and len(set(map(tuple, tokens))) > 1, (
            f"the reference's greedy tokens use only {len(distinct)} distinct ids, so matching "
            "them proves little; raise `initializer_range` in hf_config_overrides"
        )

    def test_every_checkpoint_weight_loads(self) -> None:
        model = self.build()
        loaded = model.load_weights(self.reference().state_dict.items())
        expected = set(dict(model.named_parameters()))
        assert loaded == expected, (
            f"load_weights must return the names of the parameters it filled; never filled: "
            f"{sorted(expected - set(loaded))}, not parameters: {sorted(set(loaded) - expected)}"
        )

    def test_kv_cache_spec(self) -> None:
        spec = self.loaded().kv_cache_spec()
        config = self.reference().hf_config
        assert spec.num_layers == config.num_hidden_layers
        assert spec.dtype == "float32", f"a float32 model's KV cache is float32, got {spec.dtype}"
        assert spec.num_kv_heads > 0 and spec.head_size > 0

    def test_prefill_logits_match_reference(self) -> None:
        reference = self.reference()
        logits = prefill_logits(self.loaded(), reference.prompts, block_size=self.block_size)
        for index, (ours, expected) in enumerate(
            zip(logits, reference.prefill_logits, strict=True)
        ):
            assert ours.dtype == torch.float32, "compute_logits must return float32"
            torch.testing.assert_close(
                ours,
                expected,
                atol=self.logits_atol,
                rtol=0,
                msg=functools.partial(_explain, f"prompt {index}: prefill logits differ"),
            )

    def test_greedy_tokens_match_reference(self) -> None:
        reference = self.reference()
        tokens = greedy_generate(
            self.loaded(), reference.prompts, self.max_new_tokens, block_size=self.block_size
        )
        assert tokens == reference.greedy_tokens

    def test_chunked_prefill_gives_same_tokens(self) -> None:
        reference = self.reference()
        tokens = greedy_generate(
            self.loaded(),
            reference.prompts,
            self.max_new_tokens,
            block_size=self.block_size,
            prefill_chunk=3,
        )
        assert tokens == reference.greedy_tokens

    # --- Engine level (needs the plugin installed) ------------------------------------------

    def test_engine_batched_and_alone_match_reference(self) -> None:
        name = engine_checks.installed_model_name(
            self.architecture_name(), self.architecture_class
        )
        engine_checks.check_batched_and_alone(
            self.model_dir(), name, self.reference().prompts, self.reference().greedy_tokens,
            block_size=self.block_size,
        )  # fmt: skip

    def test_engine_chunked_prefill_and_prefix_cache(self) -> None:
        name = engine_checks.installed_model_name(
            self.architecture_name(), self.architecture_class
        )
        reference = self.reference()
        engine_checks.check_chunked_and_prefix_cache(
            self.model_dir(), name, reference.prompts, reference.greedy_tokens,
            reference.prefix_prompts, reference.prefix_greedy_tokens, block_size=self.block_size,
        )  # fmt: skip


def _explain(context: str, message: str) -> str:
    return f"{context}: {message}"
