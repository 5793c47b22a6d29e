"""The engine on a CUDA GPU through the cuda platform plugin (run on the device machine)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from tenon import LLM, SamplingParams
from tenon_cuda.platform import batch_defaults_for
from tests.helpers.tiny_model import VOCAB_SIZE, make_tiny_model_dir

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

NEW_TOKENS = 32


def _prompts(count: int) -> list[list[int]]:
    rng = random.Random(5)
    return [[rng.randrange(1, VOCAB_SIZE) for _ in range(rng.randrange(3, 40))] for _ in range(count)]


def _hf(path: Path, dtype: torch.dtype):  # type: ignore[no-untyped-def]
    import transformers

    return transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to("cuda").eval()


@pytest.fixture(scope="module", params=["llama", "qwen3"])
def model_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Head size 64: a size every backend serves, the triton one included.
    return make_tiny_model_dir(tmp_path_factory.mktemp(request.param), request.param,
                               hidden_size=256, head_dim=64)


# (attention backend, enforce_eager): triton is the graph-capable backend, so its default runs
# decode steps from captured CUDA graphs; the others always run eagerly.
ENGINE_MODES = [("reference", False), ("torch-sdpa", False), ("triton", False), ("triton", True)]


@pytest.mark.parametrize(("backend", "enforce_eager"), ENGINE_MODES)
def test_float32_greedy_identical_to_hf_on_cuda(model_dir: Path, backend: str, enforce_eager: bool,
                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENON_CACHE_DIR", str(tmp_path))  # no graph sizes pruned by an earlier run
    prompts = _prompts(8)
    hf = _hf(model_dir, torch.float32)
    expected = []
    for prompt in prompts:
        ids = torch.tensor([prompt], device="cuda")
        with torch.no_grad():
            out = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                              max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, eos_token_id=None,
                              pad_token_id=0)
        expected.append(out[0, len(prompt):].tolist())
    llm = LLM(str(model_dir), dtype="float32", attention_backend=backend, log_startup=False,
              enforce_eager=enforce_eager)
    assert llm.engine.config.model.dtype == "float32"
    runner = llm.engine.client.core.executor.runner
    assert str(runner.device).startswith("cuda")
    got = [o.outputs[0].token_ids for o in llm.generate(
        [{"prompt_token_ids": p} for p in prompts],
        SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS, ignore_eos=True))]
    assert got == expected
    uses_graphs = backend == "triton" and not enforce_eager
    assert (runner.graphs is not None) == uses_graphs
    if uses_graphs:
        assert runner.graphs.num_replays >= NEW_TOKENS - 1  # every decode step of the batch
        # Default sizes: each was timed, and the kept ones are what keep_fastest_sizes says.
        from tenon.worker.decode_graphs import default_capture_sizes, keep_fastest_sizes

        graphs = runner.graphs
        max_num_seqs = llm.engine.config.scheduler.max_num_seqs
        assert set(graphs.replay_s) == set(default_capture_sizes(max_num_seqs))
        assert graphs.sizes == keep_fastest_sizes(graphs.replay_s) == llm.engine.config.cuda_graph_sizes
        assert sorted(graphs.sizes + graphs.dropped_sizes) == sorted(graphs.replay_s)
        assert graphs.sizes[-1] == max(graphs.replay_s)
    llm.shutdown()
    if uses_graphs:
        # A second start-up takes the kept sizes from the cache: captured as kept, nothing timed,
        # and the same tokens.
        again = LLM(str(model_dir), dtype="float32", attention_backend=backend, log_startup=False)
        again_graphs = again.engine.client.core.executor.runner.graphs
        assert again_graphs.sizes == graphs.sizes and again_graphs.replay_s == {}
        assert any("pruned at an earlier start-up" in note for note in again.engine.startup.notes)
        assert [o.outputs[0].token_ids for o in again.generate(
            [{"prompt_token_ids": p} for p in prompts],
            SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS, ignore_eos=True))] == expected
        again.shutdown()


def test_graph_and_eager_decode_agree_across_batch_sizes(model_dir: Path) -> None:
    """Batches of 1..9 requests pad to captured sizes 1, 2, 4, 8 and run eagerly past 8: every
    request's greedy tokens equal its tokens generated alone in eager mode."""
    prompts = _prompts(9)
    params = SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS, ignore_eos=True)
    eager = LLM(str(model_dir), dtype="float32", attention_backend="triton", log_startup=False,
                enforce_eager=True, enable_prefix_caching=False)
    expected = [eager.generate([{"prompt_token_ids": p}], params)[0].outputs[0].token_ids for p in prompts]
    eager.shutdown()
    llm = LLM(str(model_dir), dtype="float32", log_startup=False, cuda_graph_sizes=[1, 2, 4, 8],
              enable_prefix_caching=False)
    assert llm.engine.config.cuda_graph_sizes == (1, 2, 4, 8)
    for count in (1, 3, 5, 9):
        got = [o.outputs[0].token_ids for o in llm.generate(
            [{"prompt_token_ids": p} for p in prompts[:count]], params)]
        assert got == expected[:count], f"batch of {count}"
    llm.shutdown()


def test_memory_profile_sizes_the_cache_and_fits_max_model_len(model_dir: Path) -> None:
    llm = LLM(str(model_dir), dtype="bfloat16", log_startup=False, gpu_memory_utilization=0.5)
    notes = "\n".join(llm.engine.startup.notes)
    assert "memory profile:" in notes
    # Plenty of room: the cache is capped at what max_num_seqs sequences of 256 tokens could
    # use; max_num_seqs is the platform's default for this card (vLLM's rule).
    properties = torch.cuda.get_device_properties(0)
    max_num_seqs = batch_defaults_for(properties.total_memory, properties.name, "offline").max_num_seqs
    assert llm.engine.config.scheduler.max_num_seqs == max_num_seqs
    assert llm.engine.config.cache.num_blocks == max_num_seqs * (256 // 16) + 1
    assert llm.engine.config.model.max_model_len == 256
    llm.shutdown()


@pytest.mark.parametrize("backend", ["reference", "torch-sdpa", "triton"])
def test_bfloat16_logprobs_close_to_hf_on_cuda(model_dir: Path, backend: str) -> None:
    """The tolerance, and why: bf16 keeps 8 bits of mantissa, so any bf16 forward pass lands
    some distance from the exact (float32) one; how far depends on the model's size and weights,
    not on the implementation. HF transformers' own bf16 run measures that distance on these
    weights. Ours must be as close to float32 as HF's bf16 is, within a factor of 2 (the two
    round in different places: fused kernels, another reduction order) plus 0.02 nats."""
    prompts = _prompts(4)
    hf_bf16 = _hf(model_dir, torch.bfloat16)
    hf_fp32 = _hf(model_dir, torch.float32)
    llm = LLM(str(model_dir), dtype="bfloat16", attention_backend=backend, log_startup=False)
    params = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=0, ignore_eos=True)
    outputs = llm.generate([{"prompt_token_ids": p} for p in prompts], params)
    ours_error = hf_error = 0.0
    for prompt, output in zip(prompts, outputs, strict=True):
        ids = torch.tensor([prompt], device="cuda")
        with torch.no_grad():
            exact = torch.log_softmax(hf_fp32(ids).logits[0].float(), dim=-1)
            hf = torch.log_softmax(hf_bf16(ids).logits[0].float(), dim=-1)
        assert output.prompt_logprobs is not None
        for position in range(1, len(prompt)):
            entry = output.prompt_logprobs[position]
            assert entry is not None
            token = prompt[position]
            truth = float(exact[position - 1, token])
            ours_error = max(ours_error, abs(entry[token].logprob - truth))
            hf_error = max(hf_error, abs(float(hf[position - 1, token]) - truth))
    assert hf_error > 0.0  # bf16 really rounded
    assert ours_error <= 2 * hf_error + 0.02, (
        f"bf16 logprobs are {ours_error:.3f} nats from float32, HF's bf16 {hf_error:.3f}")
    llm.shutdown()


@pytest.mark.parametrize("together", [False, True], ids=["one-at-a-time", "batch-of-6"])
def test_bfloat16_decode_close_to_hf_on_cuda(model_dir: Path, together: bool) -> None:
    """One request at a time decodes through the batch-1 graph, where the fused one-token ops
    (RMSNorm and SiLU-and-mul inside the GEMVs) run; six together through the batch-8 graph,
    where the pipelined decode kernel rotates and reads strided q/k/v rows of the projection. Each
    sampled token's logprob must be as close to float32 as HF's bf16 is (the rule of the
    prompt-logprob test above)."""
    hf_bf16 = _hf(model_dir, torch.bfloat16)
    hf_fp32 = _hf(model_dir, torch.float32)
    llm = LLM(str(model_dir), dtype="bfloat16", log_startup=False)
    params = SamplingParams(temperature=0.0, max_tokens=16, logprobs=0, ignore_eos=True)
    ours_error = hf_error = 0.0
    prompts = _prompts(6 if together else 3)
    if together:
        outputs = [o.outputs[0] for o in llm.generate([{"prompt_token_ids": p} for p in prompts], params)]
    else:
        outputs = [llm.generate([{"prompt_token_ids": p}], params)[0].outputs[0] for p in prompts]
    for prompt, output in zip(prompts, outputs, strict=True):
        assert output.logprobs is not None and len(output.token_ids) == 16
        ids = torch.tensor([prompt + output.token_ids], device="cuda")
        with torch.no_grad():
            exact = torch.log_softmax(hf_fp32(ids).logits[0].float(), dim=-1)
            hf = torch.log_softmax(hf_bf16(ids).logits[0].float(), dim=-1)
        for step, (token, entry) in enumerate(zip(output.token_ids, output.logprobs, strict=True)):
            row = len(prompt) - 1 + step  # the position whose logits chose this token
            truth = float(exact[row, token])
            ours_error = max(ours_error, abs(entry[token].logprob - truth))
            hf_error = max(hf_error, abs(float(hf[row, token]) - truth))
    assert hf_error > 0.0
    assert ours_error <= 2 * hf_error + 0.02, (
        f"bf16 decode logprobs are {ours_error:.3f} nats from float32, HF's bf16 {hf_error:.3f}")
    llm.shutdown()


def test_async_scheduling_matches_sync_on_cuda(model_dir: Path) -> None:
    """Asynchronous scheduling (the default on CUDA) gives synchronous scheduling's tokens for
    greedy, seeded, penalised, stopped and logprob rows, with decode graphs on."""
    from tests.helpers.sampling_mix import assert_logprobs_close, mixed_params, random_prompts

    prompts = random_prompts(24, seed=3)
    params = mixed_params(len(prompts))
    results = []
    for async_scheduling in (False, True):
        llm = LLM(str(model_dir), dtype="float32", log_startup=False, async_scheduling=async_scheduling)
        assert llm.engine.client.core.scheduler.async_scheduling is async_scheduling
        outputs = llm.generate(prompts, params)
        results.append([(o.outputs[0].token_ids, o.outputs[0].finish_reason, o.outputs[0].logprobs)
                        for o in outputs])
        manager = llm.engine.client.core.scheduler.kv_cache_manager
        assert manager.usage == 0.0
        llm.shutdown()
    for index, (sync, run_ahead) in enumerate(zip(*results, strict=True)):
        assert run_ahead[0] == sync[0], f"prompt {index}: tokens differ"
        assert run_ahead[1] == sync[1]
        assert_logprobs_close(run_ahead[2], sync[2], index)
