"""The test runner: metadata built as the spec's example says, and greedy decoding through the
paged cache (batched, chunked) equal to recomputing each sequence densely from scratch."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
import torch

from tenon.layers import (
    Attention,
    LMHead,
    MergedLinear,
    RMSNorm,
    RotaryEmbedding,
    SiluAndMul,
    VocabEmbedding,
)
from tenon.plugins.attention.reference import ReferenceAttentionBackend
from tenon.plugins.quantization.none import NoQuantScheme
from tenon.spec.attention import AttentionLayer, ForwardContext
from tenon.spec.model import KVCacheSpec
from tenon.testing.paged_runner import PagedKVCache, build_metadata, greedy_generate

VOCAB, HIDDEN, HEADS, KV_HEADS, HEAD_SIZE, LAYERS = 29, 16, 4, 2, 4, 2
CPU = torch.device("cpu")


def test_build_metadata_follows_the_spec_example() -> None:
    # spec/attention.py: block_size 4; request 0 has 6 tokens in blocks [7, 2], request 1 has
    # 3 tokens in block [5]. Request 0 computes its last 2 tokens, request 1 all 3.
    metadata, slot_mapping = build_metadata([2, 3], [6, 3], [[7, 2], [5]], 4, "cpu")
    assert metadata.query_start_loc.tolist() == [0, 2, 5]
    assert metadata.seq_lens.tolist() == [6, 3]
    assert metadata.block_table.tolist() == [[7, 2], [5, 0]]
    assert slot_mapping.tolist() == [8, 9, 20, 21, 22]  # token 5 of request 0 -> slot 9
    assert metadata.slot_mapping is slot_mapping
    assert (metadata.max_query_len, metadata.max_seq_len) == (3, 6)
    assert (metadata.num_reqs, metadata.num_actual_tokens) == (2, 5)
    assert metadata.query_start_loc.dtype == torch.int32
    assert metadata.block_table.dtype == torch.int32
    assert slot_mapping.dtype == torch.int64


def test_allocate_gives_strided_layer_views_of_one_tensor() -> None:
    spec = KVCacheSpec(num_layers=3, num_kv_heads=2, head_size=4, dtype="float32")
    kv = PagedKVCache.allocate(spec, num_blocks=5, block_size=2, dtype=torch.float32, device="cpu")
    assert kv.kv_cache.shape == (5, 3, 2, 2, 2, 4)
    assert len(kv.kv_layers) == 3
    kv.kv_layers[2][4, 1, 0] = 7.0
    assert kv.kv_cache[4, 2, 1, 0].eq(7.0).all() and kv.kv_cache.eq(7.0).sum() == 8
    assert kv.kv_layers[0].stride(0) == 3 * 2 * 2 * 2 * 4


class TinyDecoder(torch.nn.Module):
    """A two-layer Llama-shaped model from tenon.layers, with a dense path for the oracle."""

    def __init__(self) -> None:
        super().__init__()
        dtype, scheme = torch.float32, NoQuantScheme()
        self.embed = VocabEmbedding(VOCAB, HIDDEN, dtype=dtype, device=CPU)
        self.rotary = RotaryEmbedding(
            HEAD_SIZE, HEAD_SIZE, 64, 10000.0, None, dtype=dtype, device=CPU
        )
        self.norms = torch.nn.ModuleList(
            RMSNorm(HIDDEN, 1e-6, dtype=dtype, device=CPU) for _ in range(2 * LAYERS + 1)
        )
        sizes = [HEADS * HEAD_SIZE, KV_HEADS * HEAD_SIZE, KV_HEADS * HEAD_SIZE]
        self.qkv = torch.nn.ModuleList(
            MergedLinear(
                HIDDEN,
                sizes,
                bias=True,
                quant_scheme=scheme,
                prefix=f"{i}.qkv",
                dtype=dtype,
                device=CPU,
            )
            for i in range(LAYERS)
        )
        self.out = torch.nn.ModuleList(
            MergedLinear(
                HEADS * HEAD_SIZE,
                [HIDDEN],
                bias=False,
                quant_scheme=scheme,
                prefix=f"{i}.o",
                dtype=dtype,
                device=CPU,
            )
            for i in range(LAYERS)
        )
        self.gate_up = torch.nn.ModuleList(
            MergedLinear(
                HIDDEN,
                [24, 24],
                bias=False,
                quant_scheme=scheme,
                prefix=f"{i}.gate_up",
                dtype=dtype,
                device=CPU,
            )
            for i in range(LAYERS)
        )
        self.down = torch.nn.ModuleList(
            MergedLinear(
                24,
                [HIDDEN],
                bias=False,
                quant_scheme=scheme,
                prefix=f"{i}.down",
                dtype=dtype,
                device=CPU,
            )
            for i in range(LAYERS)
        )
        self.attention = torch.nn.ModuleList(
            Attention(
                AttentionLayer(
                    layer_index=i,
                    num_heads=HEADS,
                    num_kv_heads=KV_HEADS,
                    head_size=HEAD_SIZE,
                    scale=HEAD_SIZE**-0.5,
                )
            )
            for i in range(LAYERS)
        )
        self.act = SiluAndMul()
        self.head = LMHead(VOCAB, HIDDEN, dtype=dtype, device=CPU, tied_to=self.embed)
        generator = torch.Generator().manual_seed(0)
        for param in self.parameters():
            param.data.copy_(torch.randn(param.shape, generator=generator) * 0.5)

    def kv_cache_spec(self) -> KVCacheSpec:
        return KVCacheSpec(
            num_layers=LAYERS, num_kv_heads=KV_HEADS, head_size=HEAD_SIZE, dtype="float32"
        )

    def forward(
        self, input_ids: torch.Tensor, positions: torch.Tensor, context: ForwardContext | None
    ) -> torch.Tensor:
        """Paged through `context`; dense causal SDPA over `input_ids` when it is None."""
        hidden = self.embed(input_ids)
        for i in range(LAYERS):
            qkv = self.qkv[i](self.norms[2 * i](hidden))
            q, k, v = qkv.split([HEADS * HEAD_SIZE, KV_HEADS * HEAD_SIZE, KV_HEADS * HEAD_SIZE], -1)
            q, k = self.rotary(positions, q, k)
            if context is None:
                attended = _dense_causal(q, k, v)
            else:
                attended = self.attention[i](q, k, v, context)
            hidden = hidden + self.out[i](attended)
            hidden = hidden + self.down[i](self.act(self.gate_up[i](self.norms[2 * i + 1](hidden))))
        return self.norms[-1](hidden)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(hidden)


def _dense_causal(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    num_tokens = q.shape[0]
    out = torch.nn.functional.scaled_dot_product_attention(
        q.view(num_tokens, HEADS, HEAD_SIZE).transpose(0, 1),
        k.view(num_tokens, KV_HEADS, HEAD_SIZE).transpose(0, 1),
        v.view(num_tokens, KV_HEADS, HEAD_SIZE).transpose(0, 1),
        is_causal=True,
        enable_gqa=True,
    )
    return out.transpose(0, 1).reshape(num_tokens, HEADS * HEAD_SIZE)


def dense_greedy(
    model: TinyDecoder, prompts: Iterable[list[int]], max_new_tokens: int
) -> list[list[int]]:
    """Recompute every sequence from scratch for every new token: no cache at all."""
    results = []
    for prompt in prompts:
        tokens = list(prompt)
        for _ in range(max_new_tokens):
            ids = torch.tensor(tokens)
            hidden = model(ids, torch.arange(len(tokens)), None)
            tokens.append(int(model.compute_logits(hidden[-1:]).argmax(-1)))
        results.append(tokens[len(prompt) :])
    return results


PROMPTS = [[3, 17, 5, 9, 22, 1, 4], [8], [11, 2, 27, 6, 6, 13, 0, 19, 25, 7, 14]]


@pytest.mark.parametrize("prefill_chunk", [None, 3], ids=["one-step-prefill", "chunked"])
@pytest.mark.parametrize("block_size", [4, 16])
def test_greedy_generate_matches_dense_recompute(
    prefill_chunk: int | None, block_size: int
) -> None:
    model = TinyDecoder()
    with torch.no_grad():
        expected = dense_greedy(model, PROMPTS, max_new_tokens=6)
    got = greedy_generate(
        model,
        PROMPTS,
        6,
        block_size=block_size,
        backend=ReferenceAttentionBackend,
        prefill_chunk=prefill_chunk,
    )
    assert got == expected
    assert len({tuple(tokens) for tokens in got}) == 3  # the prompts lead different ways


def test_greedy_generate_edge_cases() -> None:
    model = TinyDecoder()
    assert greedy_generate(model, PROMPTS, 0) == [[], [], []]
    with pytest.raises(ValueError, match="at least one token"):
        greedy_generate(model, [[1], []], 2)
