"""The start-up's graphs phase: which decode graph sizes to capture, and capturing them.

Sizes the user names (`--cuda-graph-sizes`) are captured as given. The default sizes are pruned
to the fastest (`decode_graphs.keep_fastest_sizes`), unless an earlier start-up with the same
card, model shapes, kernels and candidates already did it: then its kept sizes come from the
on-disk cache (`tenon.worker.graph_size_cache`) and nothing is timed.
"""

from __future__ import annotations

from typing import Any

import torch

from tenon import envs
from tenon.config import EngineConfig
from tenon.engine_args import EngineArgs
from tenon.startup.phases import StartupLog
from tenon.worker.decode_graphs import resolve_capture_sizes
from tenon.worker.graph_size_cache import FILE_NAME, GraphSizeCache, graph_size_key, source_stamp


def capture_decode_graphs(log: StartupLog, runner: Any, platform: Any, device: torch.device, args: EngineArgs,
                          config: EngineConfig, hf_config: Any, attention_backend: str) -> None:
    """Capture the runner's decode graphs and record the sizes in `config.cuda_graph_sizes`."""
    sizes = resolve_capture_sizes(args.cuda_graph_sizes, config.scheduler.max_num_seqs)
    if not sizes:
        return
    prune = args.cuda_graph_sizes is None and len(sizes) > 1
    cache = key = None
    if prune:
        cache = GraphSizeCache(envs.cache_dir() / FILE_NAME)
        key = graph_size_key(
            device_name=_device_name(device), hf_config=hf_config, dtype=config.model.dtype,
            attention_backend=attention_backend, block_size=config.cache.block_size,
            max_model_len=config.model.max_model_len, candidate_sizes=sizes, versions=_versions(),
        )
        cached = cache.load(key)
        if cached is not None:
            log.note(f"decode graph sizes pruned at an earlier start-up ({cache.path}): "
                     f"{len(cached)} of {len(sizes)} kept")
            sizes, prune = cached, False
    before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    with platform.inference_mode():
        runner.capture_graphs(platform, sizes, prune_slower=prune)
    used = (torch.cuda.memory_allocated(device) - before) if device.type == "cuda" else 0
    graphs = runner.graphs
    assert graphs is not None
    config.cuda_graph_sizes = graphs.sizes
    log.note(f"captured decode graphs for batch sizes {', '.join(map(str, graphs.sizes))} "
             f"({used / 2**20:.0f} MiB)")
    if prune:
        if graphs.dropped_sizes:
            log.note(f"dropped decode graph sizes {', '.join(map(str, graphs.dropped_sizes))}: "
                     "a larger size replays at least 3% faster")
        assert cache is not None and key is not None
        try:
            cache.store(key, graphs.sizes)
        except OSError as error:  # a read-only home costs the next start-up the timing, no more
            log.note(f"could not keep the pruned graph sizes in {cache.path}: {error}")


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def _versions() -> dict[str, str]:
    versions = {"torch": torch.__version__, "cuda": str(torch.version.cuda), "hip": str(torch.version.hip),
                "tenon sources": source_stamp()}
    try:
        import triton

        versions["triton"] = triton.__version__
    except ImportError:
        pass
    return versions
