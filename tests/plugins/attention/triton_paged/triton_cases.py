"""What the Triton attention test modules share: devices and dtypes, tolerances, a backend that
hands out NaN-poisoned buffers, the comparison against the reference backend, padded metadata."""

from __future__ import annotations

import os
from collections.abc import Callable

import attrs
import pytest
import torch

from tenon.plugins.attention import triton_registration as registration
from tenon.plugins.attention.reference import ReferenceAttentionBackend
from tenon.plugins.attention.triton_paged.backend import TritonPagedAttentionBackend
from tenon.spec.attention import AttentionLayer, AttentionMetadata
from tenon.testing.paged_layouts import backend_config, make_case, step_inputs

INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"
HAS_GPU = torch.cuda.is_available() and not INTERPRETING
SPEC = next(spec for spec in registration.tenon_attention_backends() if spec.name == "triton")
TOLERANCES = {"float32": (1e-5, 1e-5), "float16": (3e-3, 3e-3), "bfloat16": (3e-2, 3e-2)}

on_interpreter = pytest.mark.skipif(
    not INTERPRETING, reason="a GPU is visible: the kernels compile for it (run the gpu cases)"
)
on_gpu = [pytest.mark.gpu, pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")]
DEVICE_DTYPES = [
    pytest.param("cpu", "float32", marks=on_interpreter, id="cpu-float32"),
    pytest.param("cpu", "float16", marks=on_interpreter, id="cpu-float16"),
    pytest.param("cuda", "bfloat16", marks=on_gpu, id="cuda-bfloat16"),
    pytest.param("cuda", "float16", marks=on_gpu, id="cuda-float16"),
    pytest.param("cuda", "float32", marks=on_gpu, id="cuda-float32"),
]
GQA_SHAPES = [(4, 4), (4, 2), (8, 2)]  # (num_heads, num_kv_heads): ratios 1, 2, 4
NAN = float("nan")


class PoisonedBackend(TritonPagedAttentionBackend):
    """Hands out NaN-filled output and split scratch, so any element the kernels skip shows."""

    def _new_output(self, query: torch.Tensor) -> torch.Tensor:
        return torch.full(query.shape, NAN, dtype=query.dtype, device=query.device)

    def _reserve_scratch(self, layer: AttentionLayer, num_reqs: int, num_splits: int) -> None:
        super()._reserve_scratch(layer, num_reqs, num_splits)
        self._partials.fill_(NAN)
        self._lses.fill_(NAN)


def compare(
    layer: AttentionLayer,
    *,
    query_lens: list[int],
    seq_lens: list[int],
    device: str,
    dtype: str,
    block_size: int = 16,
    num_splits: int | None = None,
    low_latency: bool | None = None,
    causal: bool = True,
    seed: int = 0,
    pad: Callable[[AttentionMetadata], AttentionMetadata] | None = None,
    max_model_len: int = 256,
    backend: TritonPagedAttentionBackend | None = None,
) -> torch.Tensor:
    """One step through a poisoned Triton backend (or `backend`, reused across steps) and the
    reference on copies of one random cache: rows of requests match, every other row is zero,
    caches agree outside block 0. Returns the Triton output."""
    case = make_case(
        query_lens=query_lens, seq_lens=seq_lens, num_heads=layer.num_heads,
        num_kv_heads=layer.num_kv_heads, head_size=layer.head_size, block_size=block_size,
        num_layers=2, layer_index=1, seed=seed, dtype=getattr(torch, dtype), device=device,
    )  # fmt: skip
    query, key, value, metadata = step_inputs(case, block_size)
    metadata = attrs.evolve(metadata, causal=causal)
    if pad is not None:
        query, key, value, metadata = padded_step(query, key, value, metadata, pad, seed + 1)
    config = attrs.evolve(
        backend_config(block_size, 2, device=device, dtype=dtype), max_model_len=max_model_len
    )
    if backend is None:
        backend = PoisonedBackend(config, num_splits=num_splits, low_latency=low_latency)
    cache, reference_cache = case.kv_cache.clone(), case.kv_cache.clone()
    backend.prepare(metadata)
    output = backend.forward(layer, query, key, value, cache[:, 1], metadata)
    expected = ReferenceAttentionBackend(config).forward(
        layer, query, key, value, reference_cache[:, 1], metadata
    )
    assert output.shape == query.shape and output.dtype == query.dtype
    assert bool(output.isfinite().all()), "an output element was left unwritten (NaN poison)"
    atol, rtol = TOLERANCES[dtype]
    starts = metadata.query_start_loc.tolist()
    for request, seq_len in enumerate(metadata.seq_lens.tolist()):
        rows = slice(starts[request], starts[request + 1])
        if seq_len == 0:  # a padding request
            assert not output[rows].any(), f"padding request {request} must give zeros"
        else:
            torch.testing.assert_close(output[rows], expected[rows], atol=atol, rtol=rtol)
    assert not output[starts[-1] :].any(), "rows of no request must be zeros"
    assert torch.equal(cache[1:], reference_cache[1:]), "the K/V write differs from the reference"
    return output


def padded_step(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    metadata: AttentionMetadata,
    pad: Callable[[AttentionMetadata], AttentionMetadata],
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, AttentionMetadata]:
    """The step with `pad` applied to its metadata and random rows appended to query, key and
    value for every padding token it added."""
    metadata = pad(metadata)
    extra = metadata.slot_mapping.shape[0] - query.shape[0]
    generator = torch.Generator().manual_seed(seed)
    query, key, value = (
        torch.cat([rows, torch.randn(extra, *rows.shape[1:], generator=generator).to(rows)])
        for rows in (query, key, value)
    )
    return query, key, value, metadata


def with_padding(num_padding_reqs: int, num_padding_rows: int) -> Callable[..., AttentionMetadata]:
    """Append padding requests as the engine pads a captured decode (seq_len 0, one row writing
    slot 0 of the null block, a null block table) and then rows that belong to no request."""

    def pad(metadata: AttentionMetadata) -> AttentionMetadata:
        device = metadata.seq_lens.device
        last = int(metadata.query_start_loc[-1])
        starts = torch.arange(last + 1, last + 1 + num_padding_reqs, dtype=torch.int32)
        slots = torch.arange(num_padding_reqs + num_padding_rows) % 4  # slots of the null block
        table = torch.zeros(num_padding_reqs, metadata.block_table.shape[1], dtype=torch.int32)
        return attrs.evolve(
            metadata,
            query_start_loc=torch.cat([metadata.query_start_loc, starts.to(device)]),
            seq_lens=torch.cat([metadata.seq_lens, torch.zeros_like(starts).to(device)]),
            block_table=torch.cat([metadata.block_table, table.to(device)]),
            slot_mapping=torch.cat([metadata.slot_mapping, slots.to(device)]),
            num_reqs=metadata.num_reqs + num_padding_reqs,
        )

    return pad


