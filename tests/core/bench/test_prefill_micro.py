"""The prefill-attention microbenchmark on the CPU: FLOP counts, prefill buffers that attend as
dense causal attention over a cached prefix, the correctness gate, and the records of a run with
the reference backend at tiny shapes."""

from __future__ import annotations

import pytest
import torch

from tenon.bench.attention_choice import BackendChoice, choose_attention_backend
from tenon.bench.attention_micro import AttentionShape, make_step_buffers
from tenon.bench.prefill_micro import (
    PrefillSettings,
    attended_pairs,
    prefill_flops,
    prefill_records,
    prefill_summary_lines,
    run_prefill_micro,
)
from tenon.plugins.attention.reference import ReferenceAttentionBackend
from tenon.spec.attention import AttentionBackendConfig
from tenon.testing.paged_layouts import dense_attention

TINY_SHAPE = AttentionShape(num_heads=4, num_kv_heads=2, head_size=16, block_size=4, dtype="float32")
CPU = torch.device("cpu")


def test_flops_count_every_attended_pair_of_a_causal_prompt() -> None:
    assert attended_pairs(4, 0) == 1 + 2 + 3 + 4
    assert attended_pairs(3, 5) == 3 * 5 + (1 + 2 + 3)
    # Llama-3.1-8B: 32 heads x 128, two matmuls of 2 FLOPs per pair.
    assert prefill_flops(AttentionShape(), num_prompts=8, prompt_len=1024, cached_len=0) == (
        4 * 32 * 128 * 8 * 1024 * 1025 // 2)


def test_prefill_buffers_attend_as_dense_causal_attention_after_the_prefix() -> None:
    buffers = make_step_buffers(TINY_SHAPE, query_lens=[6, 3], seq_lens=[11, 3], num_buffers=2, device=CPU,
                                seed=4)
    # 3 + 1 blocks of 4 tokens and the null block; 9 new tokens.
    assert tuple(buffers.kv_cache.shape) == (5, 2, 2, 4, 2, 16)
    assert tuple(buffers.query.shape) == (9, 4, 16) and tuple(buffers.key.shape) == (9, 2, 16)
    metadata = buffers.metadata
    assert metadata.query_start_loc.tolist() == [0, 6, 9] and metadata.seq_lens.tolist() == [11, 3]
    assert sorted(metadata.block_table[0, :3].tolist() + metadata.block_table[1, :1].tolist()) == [1, 2, 3, 4]
    layer = TINY_SHAPE.layer(1)
    kv_layer = buffers.kv_layer(1)
    config = AttentionBackendConfig(device="cpu", dtype="float32", block_size=4, num_layers=2, max_num_reqs=2,
                                    max_num_tokens=9, max_model_len=16)
    output = ReferenceAttentionBackend(config).forward(
        layer, buffers.query, buffers.key, buffers.value, kv_layer, metadata)
    rows = {0: (0, 6, 11), 1: (6, 9, 3)}
    for request, (start, stop, seq_len) in rows.items():
        blocks = metadata.block_table[request].tolist()[: -(-seq_len // 4)]
        keys = torch.cat([kv_layer[block, 0] for block in blocks])[:seq_len]
        values = torch.cat([kv_layer[block, 1] for block in blocks])[:seq_len]
        # The step's new K/V were written behind the cached prefix first.
        assert torch.equal(keys[seq_len - (stop - start):], buffers.key[start:stop])
        expected = dense_attention(layer, buffers.query[start:stop], keys, values)
        torch.testing.assert_close(output[start:stop], expected, atol=1e-5, rtol=1e-5)


def test_cpu_run_records_rate_against_the_matmul_rate() -> None:
    settings = PrefillSettings(prompt_lens=(9, 20), num_prompts=(1, 2), cached_len=3, min_total_bytes=40_000,
                               num_warmup=1, num_repeats=2, matmul_size=64)
    reference = choose_attention_backend("reference", device_type="cpu", dtype="float32", head_size=16, block_size=4)
    sdpa = choose_attention_backend("torch-sdpa", device_type="cpu", dtype="float32", head_size=16, block_size=4)
    run = run_prefill_micro(reference, TINY_SHAPE, settings, CPU, baseline=sdpa)
    records = prefill_records(run)
    assert [(r["prompt_len"], r["num_prompts"]) for r in records] == [(9, 1), (9, 2), (20, 1), (20, 2)]
    for record, result in zip(records, run.results, strict=True):
        assert (record["workload"], record["unit"], record["backend"], record["cached_len"]) == (
            "prefill-attention", "TFLOP/s", "reference", 3)
        prompts, length = record["num_prompts"], record["prompt_len"]
        assert record["flops_per_call"] == 4 * 4 * 16 * prompts * (length * 3 + length * (length + 1) // 2)
        assert record["value"] == round(record["flops_per_call"] / result.ours.median_s / 1e12, 3)
        assert record["limit"]["value"] == float(f"{run.matmul.rate_per_s / 1e12:.4g}") > 0
        assert record["baseline"]["ratio"] == round(result.baseline.median_s / result.ours.median_s, 3)
        assert len(record["samples_us"]) == 2
    assert records[0]["check_max_abs_error"]["reference"] == 0.0
    assert records[0]["check_max_abs_error"]["torch-sdpa"] < 1e-5
    lines = prefill_summary_lines(records)
    assert lines[0].startswith("prefill-attention on cpu: attention layer: 4 heads") and "3 cached" in lines[0]
    assert len(lines) == 2 + 4


class OffByTenPercentOnPrompts(ReferenceAttentionBackend):
    """Right on decode steps, wrong on prefill ones: only the prefill gate can catch it."""

    def forward(self, *args: object, **kwargs: object) -> torch.Tensor:
        output = super().forward(*args, **kwargs)  # type: ignore[arg-type]
        metadata = args[5]
        return output * 1.1 if metadata.max_query_len > 1 else output  # type: ignore[attr-defined]


def test_a_backend_wrong_on_prompts_reports_no_number() -> None:
    wrong = BackendChoice(name="wrong-on-prompts", backend_class=OffByTenPercentOnPrompts, supports_graphs=False,
                          how="test")
    settings = PrefillSettings(prompt_lens=(8,), num_prompts=(1,), min_total_bytes=1, matmul_size=64)
    with pytest.raises(RuntimeError, match="wrong-on-prompts differs from the reference on a float32 prefill step"):
        run_prefill_micro(wrong, TINY_SHAPE, settings, CPU)


def test_settings_name_the_flag_to_fix() -> None:
    with pytest.raises(ValueError, match="--prompt-lens and one --num-prompts"):
        PrefillSettings(prompt_lens=(0,))
    with pytest.raises(ValueError, match="--cached-len must be at least 0"):
        PrefillSettings(cached_len=-1)
    assert PrefillSettings(prompt_lens=(100, 700), cached_len=50).model_len == 750
