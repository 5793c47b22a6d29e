"""Engine configuration: attrs records with vLLM's flag names, grouped by who reads them.

`EngineArgs` (tenon.engine_args) is the flat user-facing form (flags and `LLM(**kwargs)`);
it validates and resolves into an `EngineConfig`, which the engine core, the worker and
`tenon_configure` hooks receive. Fields stay mutable until start-up so plugins can adjust them
in `tenon_configure`; nothing changes them afterwards.
"""

from __future__ import annotations

import attrs

from tenon.kv_transfer_config import KVTransferConfig


@attrs.define(kw_only=True)
class ModelConfig:
    model: str  # a model directory, a .gguf file, or the default model's GGUF path
    served_model_name: str
    tokenizer: str | None = None
    dtype: str = "float32"  # resolved from "auto" before the engine starts
    max_model_len: int = 2048
    seed: int = 0
    load_format: str = "auto"
    architecture: str = ""  # HF architectures[0], filled once the config is read


@attrs.define(kw_only=True)
class CacheConfig:
    block_size: int = 16
    enable_prefix_caching: bool = True
    gpu_memory_utilization: float = 0.9
    kv_cache_memory_bytes: int | None = None
    num_gpu_blocks_override: int | None = None
    num_blocks: int = 0  # decided by the worker at start-up
    # KV offloading below the device (--kv-offloading-*); None turns a tier off. Either tier
    # selects the OffloadingConnector (tenon.plugins.kv_tiers) as the engine's KV connector.
    kv_offloading_bytes: int | None = None  # the CPU tier
    kv_offloading_dir: str | None = None  # the disk tier's directory
    kv_offloading_disk_bytes: int | None = None


@attrs.define(kw_only=True)
class SchedulerConfig:
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    enable_chunked_prefill: bool = True
    # KV reservation at admission (tenon.engine.admission); 0 turns it off.
    schedule_conservativeness: float = 1.0
    # Schedule step N+1 while step N runs (resolved at start-up from --async-scheduling).
    async_scheduling: bool = False


@attrs.define(kw_only=True)
class PluginSelection:
    """What the user asked for by name; None lets the resolver choose."""

    device: str | None = None
    attention_backend: str | None = None
    quantization: str | None = None


@attrs.define(kw_only=True)
class EngineConfig:
    model: ModelConfig
    cache: CacheConfig
    scheduler: SchedulerConfig
    plugins: PluginSelection
    enforce_eager: bool = False
    # Decode batch sizes captured as device graphs; empty when graphs are off (resolved at start).
    cuda_graph_sizes: tuple[int, ...] = ()
    # The KV connector (--kv-transfer-config); None runs without one.
    kv_transfer: KVTransferConfig | None = None
