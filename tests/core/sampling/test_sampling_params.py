from __future__ import annotations

import pickle

import pytest

from tenon.sampling import SamplingParams, validate_logprobs


def test_defaults_match_vllm() -> None:
    params = SamplingParams()
    assert (params.n, params.temperature, params.top_p, params.top_k, params.min_p) == (
        1, 1.0, 1.0, 0, 0.0
    )
    assert (params.presence_penalty, params.frequency_penalty, params.repetition_penalty) == (
        0.0, 0.0, 1.0
    )
    assert params.seed is None
    assert params.stop == ()
    assert params.stop_token_ids == ()
    assert params.ignore_eos is False
    assert params.max_tokens == 16
    assert params.min_tokens == 0
    assert params.logprobs is None
    assert params.prompt_logprobs is None
    assert params.skip_special_tokens is True
    assert params.spaces_between_special_tokens is True
    assert params.include_stop_str_in_output is False
    assert params.detokenize is True
    assert params.is_greedy is False


def test_normalisation() -> None:
    assert SamplingParams(top_k=-1).top_k == 0
    assert SamplingParams(top_k=7).top_k == 7
    assert SamplingParams(stop="###").stop == ("###",)
    assert SamplingParams(stop=["a", "bc"]).stop == ("a", "bc")
    assert SamplingParams(stop_token_ids=[3, 9]).stop_token_ids == (3, 9)
    assert SamplingParams(max_tokens=None).max_tokens is None


def test_constructor_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        SamplingParams(2)


def test_best_of_is_not_a_field() -> None:
    with pytest.raises(TypeError, match="best_of"):
        SamplingParams(best_of=2)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"n": 0}, "n must be >= 1, got 0"),
        ({"temperature": -1.0}, "temperature must be >= 0, got -1.0; use 0 for greedy"),
        ({"top_p": 0.0}, "top_p must be in (0, 1], got 0.0"),
        ({"top_p": 1.5}, "top_p must be in (0, 1], got 1.5"),
        ({"top_k": -2}, "top_k must be >= 0 (or -1), got -2"),
        ({"min_p": -0.1}, "min_p must be in [0, 1], got -0.1"),
        ({"min_p": 1.1}, "min_p must be in [0, 1], got 1.1"),
        ({"presence_penalty": 2.5}, "presence_penalty must be in [-2, 2], got 2.5"),
        ({"frequency_penalty": -2.1}, "frequency_penalty must be in [-2, 2], got -2.1"),
        ({"repetition_penalty": 0.0}, "repetition_penalty must be > 0, got 0.0"),
        ({"max_tokens": 0}, "max_tokens must be >= 1 or None, got 0"),
        ({"min_tokens": -1}, "min_tokens must be >= 0, got -1"),
        ({"min_tokens": 17}, "min_tokens must be <= max_tokens (16), got 17"),
        ({"logprobs": -1}, "logprobs must be >= 0 or None, got -1"),
        ({"prompt_logprobs": -3}, "prompt_logprobs must be >= 0 or None, got -3"),
        ({"stop": ["ok", ""]}, "stop must hold non-empty strings, got ''"),
        ({"stop": ""}, "stop must hold non-empty strings, got ''"),
    ],
)
def test_validation_names_field_and_value(changes: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError) as error:
        SamplingParams(**changes)
    assert fragment in str(error.value)


def test_boundaries_are_accepted() -> None:
    params = SamplingParams(
        temperature=0.0, top_p=1.0, top_k=0, min_p=1.0, presence_penalty=-2.0,
        frequency_penalty=2.0, repetition_penalty=0.01, max_tokens=1, min_tokens=1,
        logprobs=0, prompt_logprobs=0,
    )
    assert params.min_tokens == params.max_tokens == 1
    assert SamplingParams(max_tokens=None, min_tokens=5000).min_tokens == 5000


@pytest.mark.parametrize(
    ("temperature", "greedy"), [(0.0, True), (9e-6, True), (1e-5, False), (0.7, False)]
)
def test_is_greedy(temperature: float, greedy: bool) -> None:
    assert SamplingParams(temperature=temperature).is_greedy is greedy


def test_clone_applies_changes_and_revalidates() -> None:
    params = SamplingParams(temperature=0.8, seed=11, stop=["x"])
    child = params.clone(seed=12, n=1)
    assert (child.seed, child.temperature, child.stop) == (12, 0.8, ("x",))
    assert params.seed == 11
    with pytest.raises(ValueError, match="temperature"):
        params.clone(temperature=-0.5)


def test_pickle_round_trip() -> None:
    params = SamplingParams(temperature=0.3, top_k=-1, stop=["</s>"], stop_token_ids=[2], seed=5)
    restored = pickle.loads(pickle.dumps(params))
    assert restored == params
    assert restored.stop == ("</s>",)


def test_validate_logprobs() -> None:
    validate_logprobs(SamplingParams(logprobs=20, prompt_logprobs=20), max_logprobs=20)
    with pytest.raises(ValueError) as error:
        validate_logprobs(SamplingParams(logprobs=21), max_logprobs=20)
    assert "logprobs must be <= max_logprobs (20), got 21" in str(error.value)
    with pytest.raises(ValueError, match=r"prompt_logprobs must be <= max_logprobs \(5\), got 6"):
        validate_logprobs(SamplingParams(prompt_logprobs=6), max_logprobs=5)
