"""Attention backends on CUDA against the reference math, in every dtype (bf16 is only
testable on the GPU: the CPU interpreter paths are for float32/float16)."""

from __future__ import annotations

import pytest
import torch

from tenon.plugins.attention.reference import ReferenceAttentionBackend
from tenon.plugins.attention.sdpa import SdpaAttentionBackend
from tenon.testing.paged_layouts import (
    backend_config,
    dense_attention,
    make_case,
    make_layer,
)
from tenon.testing.paged_runner import build_metadata

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

TOLERANCE = {
    torch.float32: {"atol": 1e-4, "rtol": 1e-4},
    torch.float16: {"atol": 3e-3, "rtol": 3e-3},
    torch.bfloat16: {"atol": 3e-2, "rtol": 3e-2},
}


@pytest.mark.parametrize("backend_class", [ReferenceAttentionBackend, SdpaAttentionBackend])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    "query_lens,seq_lens",
    [([5, 1, 3, 8], [5, 9, 7, 8]), ([1, 1, 1], [17, 3, 30]), ([13], [40])],
    ids=["mixed", "decode", "chunk-on-prefix"],
)
@pytest.mark.parametrize("num_heads,num_kv_heads", [(4, 4), (8, 2)])
def test_backend_matches_dense_attention_on_cuda(
    backend_class: type, dtype: torch.dtype, query_lens: list[int], seq_lens: list[int],
    num_heads: int, num_kv_heads: int,
) -> None:
    block_size, head_size = 4, 64
    layer = make_layer(num_heads=num_heads, num_kv_heads=num_kv_heads, head_size=head_size)
    case = make_case(query_lens=query_lens, seq_lens=seq_lens, num_heads=num_heads,
                     num_kv_heads=num_kv_heads, head_size=head_size, block_size=block_size,
                     num_layers=2, layer_index=0, seed=3, dtype=dtype)
    metadata, _ = build_metadata(query_lens, seq_lens, case.block_tables, block_size, "cuda")
    lens = list(zip(query_lens, seq_lens, strict=True))
    query = torch.cat(case.queries).cuda()
    key = torch.cat([k[s - q:] for k, (q, s) in zip(case.keys, lens, strict=True)]).cuda()
    value = torch.cat([v[s - q:] for v, (q, s) in zip(case.values, lens, strict=True)]).cuda()
    kv_cache = case.kv_cache.cuda()
    backend = backend_class(backend_config(block_size, 2))
    backend.prepare(metadata)
    output = backend.forward(layer, query, key, value, kv_cache[:, 0], metadata)
    expected = torch.cat([
        dense_attention(layer, q, k, v)
        for q, k, v in zip(case.queries, case.keys, case.values, strict=True)
    ]).cuda()
    torch.testing.assert_close(output.float(), expected.float(), **TOLERANCE[dtype])
