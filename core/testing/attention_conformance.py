"""The attention backend suite: a backend against the reference backend on random paged layouts.

    from tenon.testing import AttentionBackendConformance

    class TestMyBackend(AttentionBackendConformance):
        backend_class = MyBackend            # built with an AttentionBackendConfig
        capabilities = MY_SPEC.capabilities  # or `spec = MY_SPEC`; what it declares is tested

Every layout is random (seeded): ragged query and sequence lengths, block tables shuffled so no
request's blocks are contiguous, grouped-query ratios 1, 2 and 4, a cached prefix plus a chunk,
decode-only steps, several layers of one allocation (strided views), padding rows. Each test
runs the backend and the reference on copies of one KV cache: outputs must match within the
dtype's tolerance, and the caches must end up byte-identical outside the null block. What the
capabilities declare adds tests: sliding windows, batch invariance, graph capture (on CUDA).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs
import pytest
import torch

from tenon.plugin_host.targets import import_target
from tenon.plugins.attention.reference import ReferenceAttentionBackend
from tenon.spec import AttentionBackendSpec, AttentionCapabilities
from tenon.spec.attention import AttentionBackend, AttentionLayer
from tenon.testing.graph_replay import check_graph_replay
from tenon.testing.paged_layouts import (
    backend_config,
    dense_attention,
    make_case,
    make_layer,
    step_inputs,
)
from tenon.testing.paged_runner import build_metadata
from tenon.testing.suite import ConformanceSuite

ALL_DTYPES = ("float32", "bfloat16", "float16")
# (atol, rtol): the reference rounds only its output, a backend may compute in the input dtype.
DEFAULT_TOLERANCES: Mapping[str, tuple[float, float]] = {
    "float32": (1e-5, 1e-5),
    "float16": (3e-3, 3e-3),
    "bfloat16": (3e-2, 3e-2),
}
GQA_SHAPES = ((4, 4), (4, 2), (8, 2))  # (num_heads, num_kv_heads): ratios 1, 2, 4


class AttentionBackendConformance(ConformanceSuite):
    """Set `backend_class`; optionally `spec` or `capabilities`, `device`, `tolerances`."""

    backend_class: ClassVar[type[AttentionBackend]]
    spec: ClassVar[AttentionBackendSpec | None] = None
    capabilities: ClassVar[AttentionCapabilities | None] = None  # default: the spec's
    device: ClassVar[str] = "cpu"
    tolerances: ClassVar[Mapping[str, tuple[float, float]]] = DEFAULT_TOLERANCES

    # --- What is tested ---------------------------------------------------------------------

    def declared(self) -> AttentionCapabilities:
        if self.capabilities is not None:
            return self.capabilities
        return self.spec.capabilities if self.spec is not None else AttentionCapabilities()

    def dtypes(self) -> tuple[str, ...]:
        declared = self.declared().dtypes
        dtypes = tuple(d for d in ALL_DTYPES if declared is None or d in declared)
        if not dtypes:
            raise ValueError(f"the backend declares none of the dtypes {ALL_DTYPES}")
        return dtypes

    def base_dtype(self) -> str:
        """float32 where declared (the tightest tolerance), else the first declared dtype."""
        return self.dtypes()[0]

    def base_block_size(self) -> int:
        """The block size of tests not about block sizes: 4 unless the backend declares others."""
        declared = self.declared().block_sizes
        return declared[0] if declared else 4

    def layer(self, **fields: Any) -> AttentionLayer:
        """A layer of the first declared head size (8 when any), with `fields` overridden."""
        declared = self.declared().head_sizes
        return make_layer(**{"head_size": declared[0] if declared else 8, **fields})

    def parameters(self) -> Mapping[str, Sequence[Any]]:
        declared = self.declared()
        device_type = torch.device(self.device).type
        if declared.device_types is not None and device_type not in declared.device_types:
            raise ValueError(
                f"the backend declares device types {declared.device_types}, so the suite cannot "
                f"run it on {self.device!r}: set `device` on the suite class"
            )
        return {
            "dtype": self.dtypes(),
            "heads": GQA_SHAPES,
            "block_size": declared.block_sizes or (4, 16),
            "head_size": declared.head_sizes or (64, 128),
        }

    # --- Tests ------------------------------------------------------------------------------

    def test_spec_names_this_backend(self) -> None:
        if self.spec is None:
            pytest.skip("no `spec` set on the suite: its target is not checked")
        assert import_target(self.spec.target) is self.backend_class, (
            f"spec {self.spec.name!r} names {self.spec.target}, which is not {self.backend_class}"
        )

    def test_mixed_batch_matches_reference(self, dtype: str, heads: tuple[int, int]) -> None:
        # A full prefill, a decode and a chunk on cached prefixes, and a second prefill.
        num_heads, num_kv_heads = heads
        self.compare(
            [self.layer(num_heads=num_heads, num_kv_heads=num_kv_heads)],
            query_lens=[5, 1, 3, 8],
            seq_lens=[5, 9, 7, 8],
            dtype=dtype,
        )

    def test_decode_only_matches_reference(self, dtype: str) -> None:
        self.compare(
            [self.layer(num_heads=8, num_kv_heads=2)],
            query_lens=[1, 1, 1],
            seq_lens=[1, 6, 13],
            dtype=dtype,
            seed=1,
        )

    def test_lengths_across_block_boundaries(self, block_size: int) -> None:
        self.compare(
            [self.layer()],
            query_lens=[1, block_size - 1, 3, 2 * block_size + 3],
            seq_lens=[1, block_size - 1, block_size + 1, 2 * block_size + 3],
            block_size=block_size,
            seed=2,
        )

    def test_head_sizes(self, head_size: int) -> None:
        self.compare(
            [make_layer(num_heads=4, num_kv_heads=2, head_size=head_size)],
            query_lens=[6, 1, 2],
            seq_lens=[6, 10, 9],
            seed=3,
        )

    def test_several_layers_of_one_allocation(self) -> None:
        # Layers 1 and 2 of 3 in one step, one prepare: strided views, every other byte kept.
        layers = [self.layer(layer_index=1), self.layer(layer_index=2)]
        self.compare(layers, query_lens=[3, 2, 6], seq_lens=[6, 2, 10], num_layers=3, seed=4)

    def test_padding_rows_are_ignored(self) -> None:
        # Rows past num_actual_tokens write into the null block; their output is unspecified.
        self.compare([self.layer()], query_lens=[3, 1], seq_lens=[3, 6], padding_rows=3, seed=5)

    def test_matches_dense_attention(self) -> None:
        """Against unpaged attention too, so a suite run on the reference itself tests it."""
        layer, dtype = self.layer(num_heads=8, num_kv_heads=2), self.base_dtype()
        block_size = self.base_block_size()
        case = make_case(
            query_lens=[4, 1, 3], seq_lens=[4, 7, 11], num_heads=8, num_kv_heads=2,
            head_size=layer.head_size, block_size=block_size, num_layers=1, layer_index=0, seed=6,
            dtype=getattr(torch, dtype), device=self.device,
        )  # fmt: skip
        query, key, value, metadata = step_inputs(case, block_size)
        config = backend_config(block_size, 1, device=self.device, dtype=dtype)
        backend = self.backend_class(config)
        backend.prepare(metadata)
        output = backend.forward(layer, query, key, value, case.kv_cache[:, 0], metadata)
        expected = torch.cat(
            [
                dense_attention(layer, q, k, v)
                for q, k, v in zip(case.queries, case.keys, case.values, strict=True)
            ]
        )
        atol, rtol = self.tolerances[dtype]
        torch.testing.assert_close(output, expected, atol=atol, rtol=rtol)

    def test_strided_rows_match_dense_rows(self, dtype: str) -> None:
        """A backend that declares `accepts_strided_rows` gets query, key and value as views of
        one fused projection output (as models hand them) and must compute exactly what it
        computes from dense copies of them, output and cache."""
        if not self.backend_class.accepts_strided_rows:
            pytest.skip("the backend does not declare accepts_strided_rows")
        layer, block_size = self.layer(num_heads=8, num_kv_heads=2), self.base_block_size()
        case = make_case(
            query_lens=[5, 1, 3, 8], seq_lens=[5, 9, 7, 8], num_heads=8, num_kv_heads=2,
            head_size=layer.head_size, block_size=block_size, num_layers=1, layer_index=0, seed=10,
            dtype=getattr(torch, dtype), device=self.device,
        )  # fmt: skip
        query, key, value, metadata = step_inputs(case, block_size)
        # fused: [num_tokens, (8 + 2 + 2) * head_size], as a qkv projection returns it
        fused = torch.cat([query.flatten(1), key.flatten(1), value.flatten(1)], dim=1)
        num_tokens, q_size, kv_size = query.shape[0], query[0].numel(), key[0].numel()
        views = (
            fused[:, :q_size].view(num_tokens, 8, layer.head_size),
            fused[:, q_size : q_size + kv_size].view(num_tokens, 2, layer.head_size),
            fused[:, q_size + kv_size :].view(num_tokens, 2, layer.head_size),
        )
        assert not views[0].is_contiguous()
        config = backend_config(block_size, 1, device=self.device, dtype=dtype)
        outputs, caches = [], []
        for inputs in (views, (query.clone(), key.clone(), value.clone())):
            backend, cache = self.backend_class(config), case.kv_cache.clone()
            backend.prepare(metadata)
            outputs.append(backend.forward(layer, *inputs, cache[:, 0], metadata))
            caches.append(cache)
        assert torch.equal(outputs[0], outputs[1]), "strided rows gave another output than dense rows"
        assert torch.equal(caches[0], caches[1]), "strided rows wrote another cache than dense rows"

    def test_sliding_windows(self) -> None:
        if not self.declared().supports_sliding_window:
            pytest.skip("the backend does not declare supports_sliding_window")
        layers = [
            self.layer(layer_index=0, sliding_window=3),
            self.layer(layer_index=1, sliding_window=None),
            self.layer(layer_index=2, sliding_window=1),
        ]
        self.compare(layers, query_lens=[7, 1, 4], seq_lens=[7, 11, 9], num_layers=3, seed=7)
        self.compare(
            [self.layer(sliding_window=4)], query_lens=[1, 1, 1], seq_lens=[2, 9, 14], seed=8
        )

    def test_batch_invariance(self) -> None:
        if not self.declared().batch_invariant:
            pytest.skip("the backend does not declare batch_invariant")
        layer, dtype = self.layer(num_heads=4, num_kv_heads=2), self.base_dtype()
        block_size = self.base_block_size()
        query_lens, seq_lens = [5, 1, 3], [5, 9, 7]
        case = make_case(
            query_lens=query_lens, seq_lens=seq_lens, num_heads=4, num_kv_heads=2,
            head_size=layer.head_size, block_size=block_size, num_layers=1, layer_index=0, seed=9,
            dtype=getattr(torch, dtype), device=self.device,
        )  # fmt: skip
        query, key, value, metadata = step_inputs(case, block_size)
        config = backend_config(block_size, 1, device=self.device, dtype=dtype)
        backend = self.backend_class(config)
        backend.prepare(metadata)
        batched = backend.forward(layer, query, key, value, case.kv_cache.clone()[:, 0], metadata)
        start = 0
        for request, (query_len, seq_len) in enumerate(zip(query_lens, seq_lens, strict=True)):
            alone, _ = build_metadata(
                [query_len], [seq_len], [case.block_tables[request]], block_size, self.device
            )
            rows = slice(start, start + query_len)
            backend = self.backend_class(config)
            backend.prepare(alone)
            output = backend.forward(
                layer, query[rows], key[rows], value[rows], case.kv_cache.clone()[:, 0], alone
            )
            assert torch.equal(output, batched[rows]), (
                f"request {request} computed alone differs from the same request in a batch, "
                "but the backend declares batch_invariant"
            )
            start += query_len

    def test_graph_capture_replay(self) -> None:
        if not self.declared().supports_graphs:
            pytest.skip("the backend does not declare supports_graphs")
        if torch.device(self.device).type != "cuda":
            pytest.skip("graph capture is checked on CUDA: set device = 'cuda' on a GPU machine")
        dtype = self.base_dtype()
        atol, rtol = self.tolerances[dtype]
        check_graph_replay(
            self.backend_class, self.device, dtype, self.layer(num_heads=8, num_kv_heads=2),
            self.base_block_size(), atol=atol, rtol=rtol,
        )  # fmt: skip

    # --- The comparison every test uses ------------------------------------------------------

    def compare(
        self,
        layers: list[AttentionLayer],
        *,
        query_lens: list[int],
        seq_lens: list[int],
        block_size: int | None = None,
        num_layers: int = 1,
        seed: int = 0,
        dtype: str | None = None,
        padding_rows: int = 0,
    ) -> None:
        """Run `layers` (one step, one `prepare`) through the backend and the reference on
        copies of one random cache; assert outputs and written caches agree."""
        dtype = dtype or self.base_dtype()
        block_size = block_size or self.base_block_size()
        first = layers[0]
        case = make_case(
            query_lens=query_lens, seq_lens=seq_lens, num_heads=first.num_heads,
            num_kv_heads=first.num_kv_heads, head_size=first.head_size, block_size=block_size,
            num_layers=num_layers, layer_index=first.layer_index, seed=seed,
            dtype=getattr(torch, dtype), device=self.device,
        )  # fmt: skip
        query, key, value, metadata = step_inputs(case, block_size)
        num_actual_tokens = query.shape[0]
        if padding_rows:
            query, key, value, metadata = _with_padding(
                query, key, value, metadata, padding_rows, block_size, seed
            )
        config = backend_config(block_size, num_layers, device=self.device, dtype=dtype)
        backend, reference = self.backend_class(config), ReferenceAttentionBackend(config)
        cache, reference_cache = case.kv_cache.clone(), case.kv_cache.clone()
        backend.prepare(metadata)
        for layer in layers:
            index = layer.layer_index
            output = backend.forward(
                layer, query.clone(), key.clone(), value.clone(), cache[:, index], metadata
            )
            expected = reference.forward(layer, query, key, value, reference_cache[:, index], metadata)
            assert output.shape == query.shape and output.dtype == query.dtype, (
                f"output must be {tuple(query.shape)} {query.dtype}, got "
                f"{tuple(output.shape)} {output.dtype}"
            )
            atol, rtol = self.tolerances[dtype]
            torch.testing.assert_close(
                output[:num_actual_tokens],
                expected[:num_actual_tokens],
                atol=atol,
                rtol=rtol,
                msg=functools.partial(
                    _explain, f"layer {index}: output differs from the reference backend "
                    f"({dtype}, query_lens {query_lens}, seq_lens {seq_lens})",
                ),
            )
        assert torch.equal(cache[1:], reference_cache[1:]), (
            "after the step the KV cache differs from the reference's outside the null block: "
            "this step's K/V must land exactly at slot_mapping, in the layer's own view, and "
            "nothing else may be written"
        )


def _with_padding(
    query: torch.Tensor,  # [num_tokens, num_heads, head_size]
    key: torch.Tensor,  # [num_tokens, num_kv_heads, head_size]
    value: torch.Tensor,
    metadata: Any,
    num_padding: int,
    block_size: int,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any]:
    """Append `num_padding` random rows whose slots point into the null block (block 0)."""
    generator = torch.Generator().manual_seed(seed + 1000)

    def pad(rows: torch.Tensor) -> torch.Tensor:
        extra = torch.randn(num_padding, *rows.shape[1:], generator=generator)
        return torch.cat([rows, extra.to(rows.dtype).to(rows.device)])

    null_slots = torch.arange(num_padding, device=metadata.slot_mapping.device) % block_size
    metadata = attrs.evolve(
        metadata, slot_mapping=torch.cat([metadata.slot_mapping, null_slots])
    )
    return pad(query), pad(key), pad(value), metadata


def _explain(context: str, message: str) -> str:
    return f"{context}: {message}"
