"""Engine-level checks the conformance suites share: the real `tenon.LLM`, the real plugin host.

The engine discovers plugins through installed entry points, so these checks run once the
plugin's package is installed (`pip install -e .`, or `temporary_distribution` in a test);
before that they skip and say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tenon.plugin_host import load_plugins
from tenon.plugin_host.targets import import_target
from tenon.spec import PluginKind, Requirements


def installed_model_name(architecture: str, architecture_class: type) -> str:
    """The spec name the installed plugins select for `architecture`; skips when none serves
    it, fails when another implementation wins."""
    decision = load_plugins().resolve(PluginKind.MODEL, Requirements(architecture=architecture))
    if decision.chosen is None:
        pytest.skip(
            f"no installed plugin serves {architecture}: install the plugin's package "
            "(pip install -e .) to run the engine-level checks"
        )
    chosen = import_target(decision.chosen.target)
    verdict = decision.chosen_verdict
    assert chosen is architecture_class, (
        f"the installed plugins select {decision.chosen.name!r} ({decision.chosen.target}) for "
        f"{architecture}, not {architecture_class.__qualname__}: "
        f"{'; '.join(verdict.reasons) if verdict else ''}"
    )
    return decision.chosen.name


def greedy_tokens(llm: Any, prompts: Sequence[Sequence[int]], max_new_tokens: int) -> list[list[int]]:
    from tenon import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, ignore_eos=True)
    outputs = llm.generate([{"prompt_token_ids": list(p)} for p in prompts], params)
    return [list(output.outputs[0].token_ids) for output in outputs]


def start_engine(model_dir: Path, model_name: str, **engine_args: Any) -> Any:
    """`tenon.LLM` in float32, checked to have filled the model slot with `model_name`."""
    from tenon import LLM

    llm = LLM(str(model_dir), dtype="float32", log_startup=False, **engine_args)
    chosen = llm.engine.startup.slots.get("model")
    assert chosen == model_name, f"the engine chose model {chosen!r}, expected {model_name!r}"
    return llm


def check_batched_and_alone(
    model_dir: Path,
    model_name: str,
    prompts: list[list[int]],
    expected: list[list[int]],
    *,
    block_size: int,
) -> None:
    max_new_tokens = len(expected[0])
    llm = start_engine(model_dir, model_name, block_size=block_size, enable_prefix_caching=False)
    try:
        batched = greedy_tokens(llm, prompts, max_new_tokens)
        assert batched == expected, "greedy tokens of the batch differ from the reference"
        alone = [greedy_tokens(llm, [prompt], max_new_tokens)[0] for prompt in prompts]
        assert alone == expected, "greedy tokens of each prompt alone differ from the reference"
    finally:
        llm.shutdown()


def check_chunked_and_prefix_cache(
    model_dir: Path,
    model_name: str,
    prompts: list[list[int]],
    expected: list[list[int]],
    prefix_prompts: tuple[list[int], list[int]],
    prefix_expected: list[int],
    *,
    block_size: int,
) -> None:
    """A token budget of 5 per step splits every longer prompt across steps; then a second
    prompt sharing four full blocks with the first hits the prefix cache."""
    max_new_tokens = len(expected[0])
    llm = start_engine(
        model_dir, model_name, block_size=block_size, max_num_batched_tokens=5,
        enable_prefix_caching=True,
    )  # fmt: skip
    try:
        chunked = greedy_tokens(llm, prompts, max_new_tokens)
        assert chunked == expected, "greedy tokens with chunked prefill differ from the reference"
        first, second = prefix_prompts
        greedy_tokens(llm, [first], max_new_tokens)
        from tenon import SamplingParams

        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, ignore_eos=True)
        [output] = llm.generate([{"prompt_token_ids": second}], params)
        assert output.num_cached_tokens == 4 * block_size, (
            f"the second prompt shares 4 full blocks with the first, but the engine reported "
            f"{output.num_cached_tokens} cached tokens"
        )
        assert list(output.outputs[0].token_ids) == prefix_expected, (
            "greedy tokens after a prefix-cache hit differ from the reference"
        )
    finally:
        llm.shutdown()
