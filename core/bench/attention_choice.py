"""Which attention backend a microbenchmark times, and the check that it computes the right
thing before any time it takes is reported.

A backend is named as the engine's `--attention-backend` names it and chosen through the plugin
host with the engine's requirements (device type, dtype, head size, block size), so the
benchmark times the class the engine would run; a `module:Class` target imports a class no
plugin registers yet (its graph support is then unknown, and it runs eagerly unless told).
"""

from __future__ import annotations

import attrs
import torch

from tenon.spec.attention import AttentionBackend, AttentionBackendConfig

# Decode steps of three requests, one long enough to be split across programs, one shorter
# than a block, one in between; clipped to the model length of the benchmark's backend config.
CHECK_SEQ_LENS = (1500, 7, 300)
# A prefill check (`prefill=True`): a 40-token chunk after a cached prefix, a whole 7-token
# prompt, and a decode row beside them (query lengths; sequence lengths as above).
CHECK_PREFILL_QUERY_LENS = (40, 7, 1)


@attrs.frozen(kw_only=True)
class BackendChoice:
    name: str
    backend_class: type[AttentionBackend]
    supports_graphs: bool | None  # None: imported by target, nothing declared
    how: str  # how it was chosen, for the record


def choose_attention_backend(name: str, *, device_type: str, dtype: str, head_size: int,
                             block_size: int) -> BackendChoice:
    """The backend `name` (a registered name, or a `module:Class` target)."""
    from tenon.plugin_host import load_plugins
    from tenon.plugin_host.targets import import_target
    from tenon.spec import PluginKind, Requirements

    if ":" in name:
        backend_class = import_target(name)
        if not (isinstance(backend_class, type) and issubclass(backend_class, AttentionBackend)):
            raise ValueError(f"--attention-backend {name!r} names {backend_class!r}, not an AttentionBackend class")
        return BackendChoice(name=name, backend_class=backend_class, supports_graphs=None,
                             how="imported by target (graph support not declared)")
    host = load_plugins()
    requirements = Requirements(device_type=device_type, dtype=dtype, head_size=head_size, block_size=block_size)
    backend_class, decision = host.select(PluginKind.ATTENTION_BACKEND, requirements, requested=name)
    spec = decision.chosen
    assert spec is not None  # select() raises when nothing fills the slot
    return BackendChoice(name=spec.name, backend_class=backend_class,
                         supports_graphs=spec.capabilities.supports_graphs,
                         how=f"plugin host, requested by name ({spec.target})")


def check_against_reference(choice: BackendChoice, config: AttentionBackendConfig, *, num_heads: int,
                            num_kv_heads: int, head_size: int, seed: int = 0, prefill: bool = False) -> float:
    """Run one decode step (or, with `prefill`, a step of prompt chunks and a decode row) of
    random paged requests through `choice` and the reference backend (layer 1 of a two-layer
    cache, so the layer view is strided); return the largest absolute difference, or raise
    RuntimeError when it exceeds the conformance suite's tolerance."""
    from tenon.plugins.attention.reference import ReferenceAttentionBackend
    from tenon.testing.attention_conformance import DEFAULT_TOLERANCES
    from tenon.testing.paged_layouts import make_case, make_layer, step_inputs

    seq_lens = [min(seq_len, config.max_model_len) for seq_len in CHECK_SEQ_LENS]
    query_lens = [1] * len(seq_lens)
    if prefill:
        query_lens = [min(query_len, seq_len) for query_len, seq_len in zip(CHECK_PREFILL_QUERY_LENS, seq_lens,
                                                                            strict=True)]
    case = make_case(
        query_lens=query_lens, seq_lens=seq_lens, num_heads=num_heads, num_kv_heads=num_kv_heads,
        head_size=head_size, block_size=config.block_size, num_layers=2, layer_index=1, seed=seed,
        dtype=getattr(torch, config.dtype), device=config.device,
    )
    query, key, value, metadata = step_inputs(case, config.block_size)
    layer = make_layer(num_heads=num_heads, num_kv_heads=num_kv_heads, head_size=head_size, layer_index=1)
    check_config = attrs.evolve(config, num_layers=2, max_num_reqs=max(config.max_num_reqs, len(seq_lens)),
                                max_num_tokens=max(config.max_num_tokens, sum(query_lens)))
    backend, reference = choice.backend_class(check_config), ReferenceAttentionBackend(check_config)
    cache, reference_cache = case.kv_cache.clone(), case.kv_cache.clone()
    with torch.inference_mode():
        backend.prepare(metadata)
        # output, expected: [num_reqs, num_heads, head_size]
        output = backend.forward(layer, query.clone(), key.clone(), value.clone(), cache[:, 1], metadata)
        expected = reference.forward(layer, query, key, value, reference_cache[:, 1], metadata)
    atol, rtol = DEFAULT_TOLERANCES[config.dtype]
    error = (output.float() - expected.float()).abs()
    max_error = float(error.max())
    if not bool((error <= atol + rtol * expected.float().abs()).all()):
        raise RuntimeError(
            f"attention backend {choice.name} differs from the reference on a {config.dtype} "
            f"{'prefill' if prefill else 'decode'} step (query_lens {query_lens}, "
            f"seq_lens {seq_lens}): max abs error {max_error:.4g} over atol {atol} + rtol {rtol}; "
            "no time is reported for a backend that computes the wrong thing"
        )
    return max_error
