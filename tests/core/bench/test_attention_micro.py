"""The decode-attention microbenchmark on the CPU: byte counts, buffer layout, the correctness
gate, and the records of a run with the reference backend at tiny shapes."""

from __future__ import annotations

import math

import pytest
import torch

from tenon.bench.attention_choice import BackendChoice, choose_attention_backend
from tenon.bench.attention_micro import AttentionShape, make_decode_buffers, num_buffers_for
from tenon.bench.attention_micro_run import (
    MicroSettings,
    micro_records,
    micro_summary_lines,
    resolve_use_graph,
    run_attention_micro,
)
from tenon.plugins.attention.reference import ReferenceAttentionBackend
from tenon.testing.paged_layouts import dense_attention

TINY_SHAPE = AttentionShape(num_heads=4, num_kv_heads=2, head_size=16, block_size=4, dtype="float32")
CPU = torch.device("cpu")


def reference_choice() -> BackendChoice:
    return choose_attention_backend("reference", device_type="cpu", dtype="float32", head_size=16, block_size=4)


def test_llama_shape_bytes() -> None:
    shape = AttentionShape()
    assert shape.element_bytes == 2
    assert shape.kv_bytes_read(64, 32768) == 8 * 2**30  # 64 x 32768 tokens x 8 heads x 128 x K,V x 2 bytes
    assert shape.query_output_bytes(64) == 2 * 64 * 32 * 128 * 2
    # 256 blocks of 16 tokens and the null block, 64 KiB each (K and V of 8 heads x 128).
    assert shape.buffer_bytes(1, 4096) == 257 * 65536
    assert shape.buffer_bytes(1, 4100) == 258 * 65536


def test_buffer_counts_reach_the_total_within_memory() -> None:
    small = 257 * 65536
    assert num_buffers_for(small, min_total_bytes=2**30, min_num_buffers=2, max_total_bytes=None) == 64
    assert num_buffers_for(small, min_total_bytes=2**30, min_num_buffers=2, max_total_bytes=10 * small) == 10
    assert num_buffers_for(8 * 2**30, min_total_bytes=2**30, min_num_buffers=2, max_total_bytes=None) == 2
    assert num_buffers_for(8 * 2**30, min_total_bytes=2**30, min_num_buffers=2, max_total_bytes=9 * 2**30) == 1
    with pytest.raises(ValueError, match="one KV buffer takes 8.00 GiB"):
        num_buffers_for(8 * 2**30, min_total_bytes=2**30, min_num_buffers=2, max_total_bytes=2**30)


def test_buffers_are_random_shuffled_and_attend_as_dense_attention() -> None:
    buffers = make_decode_buffers(TINY_SHAPE, batch_size=3, context_len=10, num_buffers=2, device=CPU, seed=5)
    # 3 requests x 3 blocks and the null block; 2 layers of K and V.
    assert tuple(buffers.kv_cache.shape) == (10, 2, 2, 4, 2, 16)
    assert buffers.total_bytes == 10 * 2 * 2 * 4 * 2 * 16 * 4
    assert bool((buffers.kv_cache != 0).all())
    table = buffers.metadata.block_table
    assert sorted(table.flatten().tolist()) == list(range(1, 10))
    assert table.flatten().tolist() != list(range(1, 10))  # not contiguous
    assert buffers.metadata.seq_lens.tolist() == [10, 10, 10] and buffers.metadata.max_query_len == 1
    # Layer 1's output is attention over the K/V the block table points at (this step's row
    # written at position 9 first), which is the work the benchmark times.
    layer = TINY_SHAPE.layer(1)
    kv_layer = buffers.kv_layer(1)
    output = ReferenceAttentionBackend(_config(2)).forward(
        layer, buffers.query, buffers.key, buffers.value, kv_layer, buffers.metadata)
    for request in range(3):
        # tokens: [context_len, num_kv_heads, head_size] gathered block by block
        keys = torch.cat([kv_layer[block, 0] for block in table[request].tolist()])[:10]
        values = torch.cat([kv_layer[block, 1] for block in table[request].tolist()])[:10]
        assert torch.equal(keys[9], buffers.key[request]) and torch.equal(values[9], buffers.value[request])
        expected = dense_attention(layer, buffers.query[request : request + 1], keys, values)
        torch.testing.assert_close(output[request : request + 1], expected, atol=1e-5, rtol=1e-5)


def _config(num_layers: int) -> object:
    from tenon.spec.attention import AttentionBackendConfig

    return AttentionBackendConfig(device="cpu", dtype="float32", block_size=4, num_layers=num_layers,
                                  max_num_reqs=3, max_num_tokens=3, max_model_len=16)


def test_cpu_run_records_bandwidth_against_copy_bandwidth() -> None:
    settings = MicroSettings(context_lens=(9, 20), batch_sizes=(1, 2), min_total_bytes=40_000, num_warmup=1,
                             num_repeats=3, copy_size_bytes=1 << 20)
    sdpa = choose_attention_backend("torch-sdpa", device_type="cpu", dtype="float32", head_size=16, block_size=4)
    run = run_attention_micro(reference_choice(), TINY_SHAPE, settings, CPU, baseline=sdpa)
    records = micro_records(run)
    assert [(r["context_len"], r["batch_size"]) for r in records] == [(9, 1), (9, 2), (20, 1), (20, 2)]
    copy_gb_per_s = run.bandwidth.rate_per_s / 1e9
    for record, result in zip(records, run.results, strict=True):
        assert (record["workload"], record["card"], record["unit"], record["backend"]) == (
            "decode-attention", "cpu", "GB/s", "reference")
        # K and V of every context token (2 KV heads x 16 x 4 bytes each), query and output.
        batch, context = record["batch_size"], record["context_len"]
        assert record["bytes_per_call"] == batch * context * 2 * 16 * 2 * 4 + 2 * batch * 4 * 16 * 4
        assert record["num_buffers"] == math.ceil(40_000 / TINY_SHAPE.buffer_bytes(batch, context))
        assert record["value"] == round(record["bytes_per_call"] / result.ours.median_s / 1e9, 3)
        assert record["limit"]["value"] == round(copy_gb_per_s, 3)
        assert record["fraction_of_limit"] == round(
            record["bytes_per_call"] / result.ours.median_s / 1e9 / record["limit"]["value"], 4)
        assert record["timing"].startswith("eager cycle") and len(record["samples_us"]) == 3
        assert record["baseline"]["name"].startswith("torch-sdpa backend, eager cycle")
        assert record["baseline"]["ratio"] == round(result.baseline.median_s / result.ours.median_s, 3)
    assert record["check_max_abs_error"]["reference"] == 0.0
    assert record["check_max_abs_error"]["torch-sdpa"] < 1e-5
    lines = micro_summary_lines(records)
    assert lines[0].startswith("decode-attention on cpu: attention layer: 4 heads, 2 KV heads")
    assert len(lines) == 2 + 4


class OffByTenPercent(ReferenceAttentionBackend):
    def forward(self, *args: object, **kwargs: object) -> torch.Tensor:
        return super().forward(*args, **kwargs) * 1.1  # type: ignore[arg-type]


def test_a_wrong_backend_reports_no_number() -> None:
    wrong = BackendChoice(name="off-by-ten-percent", backend_class=OffByTenPercent, supports_graphs=False,
                          how="test")
    settings = MicroSettings(context_lens=(8,), batch_sizes=(1,), min_total_bytes=1, copy_size_bytes=1 << 20)
    with pytest.raises(RuntimeError, match="off-by-ten-percent differs from the reference.*no time is reported"):
        run_attention_micro(wrong, TINY_SHAPE, settings, CPU)


def test_backend_choice_and_graph_mode() -> None:
    choice = reference_choice()
    assert (choice.name, choice.backend_class, choice.supports_graphs) == (
        "reference", ReferenceAttentionBackend, False)
    by_target = choose_attention_backend("tenon.plugins.attention.reference:ReferenceAttentionBackend",
                                         device_type="cpu", dtype="float32", head_size=16, block_size=4)
    assert by_target.backend_class is ReferenceAttentionBackend and by_target.supports_graphs is None
    with pytest.raises(ValueError, match="not an AttentionBackend class"):
        choose_attention_backend("tenon.bench.attention_micro:AttentionShape", device_type="cpu",
                                 dtype="float32", head_size=16, block_size=4)
    assert resolve_use_graph(choice, None, CPU) is False
    with pytest.raises(ValueError, match="needs a CUDA device"):
        resolve_use_graph(by_target, True, CPU)
    with pytest.raises(ValueError, match="does not declare graph support"):
        resolve_use_graph(choice, True, torch.device("cuda"))
    with pytest.raises(ValueError, match="--max-model-len 16 is shorter than the longest context 20"):
        MicroSettings(context_lens=(20,), max_model_len=16)
