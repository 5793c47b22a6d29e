"""Request features through the whole engine: n, stop strings, logprobs, bad input."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from tenon import LLM, SamplingParams
from tests.helpers.tiny_model import load_hf_model


@pytest.fixture(scope="module")
def llm(tiny_llama_dir: Path):  # type: ignore[no-untyped-def]
    engine = LLM(str(tiny_llama_dir), dtype="float32", log_startup=False, max_model_len=64)
    yield engine
    engine.shutdown()


def _assert_all_blocks_free(llm: LLM) -> None:
    pool = llm.engine.client.core.scheduler.kv_cache_manager.block_pool
    assert all(block.ref_count == 0 for block in pool.blocks)


def test_too_long_prompt_names_both_lengths_and_engine_keeps_serving(llm: LLM) -> None:
    ok = {"prompt_token_ids": [5, 6, 7]}
    too_long = {"prompt_token_ids": list(range(1, 100))}
    with pytest.raises(ValueError, match=r"99 tokens.*--max-model-len is 64"):
        llm.generate([ok, too_long], SamplingParams(max_tokens=4))
    _assert_all_blocks_free(llm)
    assert not llm.engine.client.has_unfinished_requests()
    output = llm.generate(ok, SamplingParams(max_tokens=4, ignore_eos=True))[0]
    assert len(output.outputs[0].token_ids) == 4


def test_generation_stops_at_max_model_len(llm: LLM) -> None:
    output = llm.generate({"prompt_token_ids": list(range(1, 61))},
                          SamplingParams(max_tokens=50, ignore_eos=True))[0]
    assert len(output.outputs[0].token_ids) == 4
    assert output.outputs[0].finish_reason == "length"


def test_invalid_sampling_parameters_say_what_to_change() -> None:
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-1.0)
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0.0)


def test_out_of_vocabulary_token_id_is_refused(llm: LLM) -> None:
    with pytest.raises(ValueError, match="outside the vocabulary"):
        llm.generate({"prompt_token_ids": [1, 100000]})


def test_n_samples_and_greedy_text(llm: LLM) -> None:
    params = SamplingParams(n=3, temperature=1.0, seed=5, max_tokens=8, ignore_eos=True)
    output = llm.generate("hello world", params)[0]
    assert [c.index for c in output.outputs] == [0, 1, 2]
    assert len({tuple(c.token_ids) for c in output.outputs}) > 1
    assert output.outputs[0].text == llm.tokenizer.decode(output.outputs[0].token_ids, skip_special_tokens=True)


def test_stop_string_truncates_text_and_frees_blocks(llm: LLM) -> None:
    greedy = SamplingParams(temperature=0.0, max_tokens=20, ignore_eos=True)
    full = llm.generate("the quick brown", greedy)[0].outputs[0].text
    assert len(full) > 6
    stop = full[3:6]
    stopped = llm.generate("the quick brown", greedy.clone(stop=[stop]))[0].outputs[0]
    assert stopped.text == full[: full.index(stop)]
    assert stopped.finish_reason == "stop" and stopped.stop_reason == stop
    _assert_all_blocks_free(llm)


def test_logprobs_equal_reference_log_softmax(llm: LLM, tiny_llama_dir: Path) -> None:
    prompt = [11, 12, 13, 14, 15]
    output = llm.generate({"prompt_token_ids": prompt},
                          SamplingParams(temperature=0.0, max_tokens=3, logprobs=2, prompt_logprobs=1,
                                         ignore_eos=True))[0]
    hf = load_hf_model(tiny_llama_dir)
    tokens = prompt + output.outputs[0].token_ids
    with torch.no_grad():
        reference = torch.log_softmax(hf(torch.tensor([tokens])).logits[0].float(), dim=-1)
    for step, position in enumerate(output.outputs[0].logprobs or []):
        row = reference[len(prompt) - 1 + step]
        token = output.outputs[0].token_ids[step]
        assert math.isclose(position[token].logprob, float(row[token]), abs_tol=1e-4)
        assert position[token].rank == 1
        top2 = row.topk(2).indices.tolist()
        assert set(top2) <= set(position)
    prompt_logprobs = output.prompt_logprobs
    assert prompt_logprobs is not None and prompt_logprobs[0] is None
    for index in range(1, len(prompt)):
        entry = prompt_logprobs[index]
        assert entry is not None
        assert math.isclose(entry[prompt[index]].logprob, float(reference[index - 1, prompt[index]]), abs_tol=1e-4)


def test_model_without_tokenizer_accepts_token_ids(tiny_llama_dir: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_llama_dir / name, bare / name)
    llm = LLM(str(bare), dtype="float32", log_startup=False)
    assert llm.tokenizer is None
    output = llm.generate({"prompt_token_ids": [3, 4, 5]}, SamplingParams(max_tokens=5, ignore_eos=True))[0]
    assert len(output.outputs[0].token_ids) == 5 and output.outputs[0].text == ""
    with pytest.raises(ValueError, match="no tokenizer"):
        llm.generate("text needs a tokenizer")
    llm.shutdown()


def test_unknown_architecture_lists_supported_and_points_to_doctor(tiny_llama_dir: Path, tmp_path: Path) -> None:
    odd = tmp_path / "odd"
    shutil.copytree(tiny_llama_dir, odd)
    config = json.loads((odd / "config.json").read_text())
    config["architectures"] = ["FancyNewForCausalLM"]
    (odd / "config.json").write_text(json.dumps(config))
    with pytest.raises(Exception, match=r"(?s)FancyNewForCausalLM.*LlamaForCausalLM.*tenon doctor"):
        LLM(str(odd), log_startup=False)


def test_unknown_engine_argument_suggests_the_right_one(tiny_llama_dir: Path) -> None:
    with pytest.raises(TypeError, match="max_model_len"):
        LLM(str(tiny_llama_dir), max_model_length=10)
