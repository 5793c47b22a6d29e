"""Graph-capture safety of an attention backend: capture one decode step, replay another.

A backend that declares `supports_graphs` must compute from the metadata's persistent buffers
only: no host synchronisation (CUDA refuses `.item()` and `.tolist()` while capturing), no
allocation whose size depends on the data, and no plan cached on the host that a replay would
not refresh. The check captures `prepare` + `forward` for decode step A into a CUDA graph, then
refills the same buffers (metadata, query, key, value) with step B, replays, and compares with
the reference backend run eagerly on B. Host fields are fixed at capture time, as the engine
fixes them: `max_query_len` 1 and `max_seq_len` the model length.
"""

from __future__ import annotations

import torch

from tenon.plugins.attention.reference import ReferenceAttentionBackend
from tenon.spec.attention import AttentionBackend, AttentionLayer, AttentionMetadata
from tenon.testing.paged_layouts import backend_config, make_case
from tenon.testing.paged_runner import build_metadata

# Step B's sequences are at least as long as step A's, so both fit one block table.
SEQ_LENS_A = [5, 2, 13]
SEQ_LENS_B = [17, 3, 30]


def check_graph_replay(
    backend_class: type[AttentionBackend],
    device: str,
    dtype: str,
    layer: AttentionLayer,
    block_size: int,
    *,
    atol: float,
    rtol: float,
) -> None:
    """Raise AssertionError when a replayed step differs from the reference (CUDA only)."""
    torch_dtype = getattr(torch, dtype)
    num_reqs = 3
    case = make_case(
        query_lens=[1] * num_reqs, seq_lens=SEQ_LENS_B, num_heads=layer.num_heads,
        num_kv_heads=layer.num_kv_heads, head_size=layer.head_size, block_size=block_size,
        num_layers=1, layer_index=0, seed=11, dtype=torch_dtype, device=device,
    )  # fmt: skip
    config = backend_config(block_size, 1, device=device, dtype=dtype)
    backend, reference = backend_class(config), ReferenceAttentionBackend(config)
    cache, reference_cache = case.kv_cache.clone(), case.kv_cache.clone()

    def step(seq_lens: list[int], seed: int) -> tuple[AttentionMetadata, list[torch.Tensor]]:
        metadata, _ = build_metadata([1] * num_reqs, seq_lens, case.block_tables, block_size, device)
        generator = torch.Generator().manual_seed(seed)
        rows = [
            torch.randn(num_reqs, heads, layer.head_size, generator=generator)
            .to(torch_dtype)
            .to(device)
            for heads in (layer.num_heads, layer.num_kv_heads, layer.num_kv_heads)
        ]  # query, key, value: [num_reqs, heads, head_size]
        return metadata, rows

    metadata_a, rows_a = step(SEQ_LENS_A, seed=12)
    metadata_b, rows_b = step(SEQ_LENS_B, seed=13)
    # The persistent buffers a captured graph reads, shaped as the engine's (the block table as
    # wide as the model length allows); host fields fixed at their upper bounds.
    max_blocks_per_req = -(-config.max_model_len // block_size)
    block_table = torch.zeros(num_reqs, max_blocks_per_req, dtype=torch.int32, device=device)
    block_table[:, : metadata_a.block_table.shape[1]] = metadata_a.block_table
    static = AttentionMetadata(
        query_start_loc=metadata_a.query_start_loc.clone(),
        seq_lens=metadata_a.seq_lens.clone(),
        block_table=block_table,
        slot_mapping=metadata_a.slot_mapping.clone(),
        max_query_len=1,
        max_seq_len=config.max_model_len,
        num_reqs=num_reqs,
        num_actual_tokens=num_reqs,
    )
    static_rows = [rows.clone() for rows in rows_a]

    def run() -> torch.Tensor:
        backend.prepare(static)
        query, key, value = static_rows
        return backend.forward(layer, query, key, value, cache[:, 0], static)

    side_stream = torch.cuda.Stream()
    side_stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side_stream):
        run()  # warm-up outside capture, as torch requires
    torch.cuda.current_stream().wait_stream(side_stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_output = run()
    reference.forward(layer, rows_a[0], rows_a[1], rows_a[2], reference_cache[:, 0], metadata_a)

    for buffer, source in zip(
        (static.query_start_loc, static.seq_lens, static.slot_mapping),
        (metadata_b.query_start_loc, metadata_b.seq_lens, metadata_b.slot_mapping),
        strict=True,
    ):
        buffer.copy_(source)
    static.block_table.zero_()
    static.block_table[:, : metadata_b.block_table.shape[1]] = metadata_b.block_table
    for buffer, source in zip(static_rows, rows_b, strict=True):
        buffer.copy_(source)
    graph.replay()
    torch.cuda.synchronize()
    expected = reference.forward(
        layer, rows_b[0], rows_b[1], rows_b[2], reference_cache[:, 0], metadata_b
    )
    torch.testing.assert_close(
        static_output,
        expected,
        atol=atol,
        rtol=rtol,
        msg=_explain_replay,
    )
    assert torch.equal(cache[1:], reference_cache[1:]), (
        "after replay the KV cache differs from the reference's outside the null block"
    )


def _explain_replay(message: str) -> str:
    return (
        "the replayed graph differs from the reference on the refilled buffers (the backend "
        f"may read host copies made at capture time): {message}"
    )
