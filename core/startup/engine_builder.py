"""Build an engine from `EngineArgs`, phase by phase, printing what filled each slot and why.

    plugins -> config -> platform -> model (quant scheme, architecture, weights) -> tokenizer
            -> KV cache -> attention backend -> scheduler and runner
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from tenon import envs
from tenon.config import CacheConfig, EngineConfig, ModelConfig, PluginSelection, SchedulerConfig
from tenon.engine.client import InProcessEngineClient
from tenon.engine.core import EngineCore
from tenon.engine.kv_cache_manager import KVCacheManager
from tenon.engine.scheduler import Scheduler
from tenon.engine_args import DTYPE_ALIASES, EngineArgs
from tenon.kv_transfer_config import parse_kv_transfer_config
from tenon.plugin_host import Decision, PluginHost, load_plugins
from tenon.spec import PlatformSpec, PluginKind, Requirements
from tenon.spec.attention import AttentionBackendConfig
from tenon.spec.model import ModelBuildContext
from tenon.spec.platform import GENERIC_BATCH_DEFAULTS, BatchDefaults, Usage
from tenon.startup import heap
from tenon.startup.graph_capture import capture_decode_graphs
from tenon.startup.kv_transfer_setup import build_kv_transfer, select_kv_connector
from tenon.startup.model_source import resolve_model_source, select_loader
from tenon.startup.phases import StartupLog
from tenon.worker.input_buffers import InputBuffers
from tenon.worker.kv_cache import allocate_kv_cache, num_blocks_for
from tenon.worker.model_runner import ModelRunner
from tenon.worker.worker import Worker


@attrs.frozen(kw_only=True)
class Engine:
    """A started engine: the client to drive it and what the frontend needs beside it."""

    config: EngineConfig
    client: InProcessEngineClient
    tokenizer: Any | None
    hf_config: Any
    host: PluginHost
    startup: StartupLog
    eos_token_id: int | None


def _resolve_dtype(requested: str, hf_config: Any, platform: Any) -> str:
    dtype = DTYPE_ALIASES[requested]
    if dtype != "auto":
        return dtype
    stored = getattr(hf_config, "dtype", None) or getattr(hf_config, "torch_dtype", None)
    stored_name = str(stored).removeprefix("torch.") if stored is not None else None
    return str(platform.default_dtype(stored_name))


def _pick(log: StartupLog, host: PluginHost, kind: PluginKind, requirements: Requirements,
          requested: str | None = None, preferred: tuple[str, ...] = ()) -> Any:
    implementation, decision = host.select(kind, requirements, requested=requested, preferred=preferred)
    _log_decision(log, decision)
    return implementation


def _log_decision(log: StartupLog, decision: Decision) -> None:
    verdict = decision.chosen_verdict
    assert decision.chosen is not None  # select() raises when nothing fills the slot
    log.slot(decision.kind.label, decision.chosen.name, "; ".join(verdict.reasons) if verdict else "")


def build_engine(args: EngineArgs, *, log: StartupLog | None = None, usage: Usage = "offline") -> Engine:
    """Start an engine for `args`; `usage` says who runs it ("offline": the `LLM` class,
    "server": `tenon serve`), which picks the platform's batch defaults."""
    log = log or StartupLog()
    envs.check_environment()
    with log.phase("plugins"):
        host = load_plugins()
        host.check_allowlist()
    with log.phase("config"):
        source = resolve_model_source(args.model)
        loader_cls, load_format, decision = select_loader(host, source, args.load_format)
        _log_decision(log, decision)
        loader = loader_cls(cache_dir=envs.cache_dir())
        hf_config = loader.load_config(source)
        architecture = (getattr(hf_config, "architectures", None) or [""])[0]
        model_max_len = int(getattr(hf_config, "max_position_embeddings", 0) or 2048)
        max_model_len = args.max_model_len or model_max_len
        if max_model_len > model_max_len:
            raise ValueError(
                f"--max-model-len {max_model_len} is longer than the model's "
                f"max_position_embeddings ({model_max_len}); lower --max-model-len"
            )
        config = EngineConfig(
            model=ModelConfig(
                model=str(source.path),
                served_model_name=args.served_model_name or _default_served_name(args.model, source.path),
                tokenizer=args.tokenizer,
                dtype=args.dtype,
                max_model_len=max_model_len,
                seed=args.seed,
                load_format=load_format,
                architecture=architecture,
            ),
            cache=CacheConfig(
                block_size=args.block_size,
                enable_prefix_caching=args.enable_prefix_caching,
                gpu_memory_utilization=args.gpu_memory_utilization,
                kv_cache_memory_bytes=args.kv_cache_memory_bytes,
                num_gpu_blocks_override=args.num_gpu_blocks_override,
                **args.kv_offloading_cache_fields(),
            ),
            scheduler=provisional_scheduler_config(args),
            plugins=PluginSelection(
                device=args.device, attention_backend=args.attention_backend, quantization=args.quantization
            ),
            enforce_eager=args.enforce_eager,
            kv_transfer=parse_kv_transfer_config(args.kv_transfer_config),
        )
        host.configure(config)
    with log.phase("platform"):
        platform_cls, platform_decision = host.select(PluginKind.PLATFORM, Requirements(),
                                                      requested=config.plugins.device)
        _log_decision(log, platform_decision)
        platform = platform_cls()
        platform_spec = platform_decision.chosen
        assert isinstance(platform_spec, PlatformSpec)  # select() raises when nothing fits
        platform_has_graphs = platform_spec.capabilities.supports_graphs
        device = platform.device(0)
        _resolve_batch_limits(log, config, args, platform.batch_defaults(device, usage))
        config.model.dtype = _resolve_dtype(config.model.dtype, hf_config, platform)
        dtype = getattr(torch, config.model.dtype)
    connector_classes = None
    if config.kv_transfer is not None:
        with log.phase("kv connector"):
            connector_classes = select_kv_connector(log, host, config.kv_transfer, device.type)
    with log.phase("model"):
        quant_config = getattr(hf_config, "quantization_config", None)
        quant_method = config.plugins.quantization or (quant_config or {}).get("quant_method") or "none"
        quant_cls = _pick(log, host, PluginKind.QUANT_SCHEME,
                          Requirements(quantization=quant_method, device_type=device.type))
        model_cls = _pick(log, host, PluginKind.MODEL, Requirements(architecture=architecture))
        build = ModelBuildContext(dtype=dtype, device=device, quant_scheme=quant_cls.from_config(quant_config))
        with platform.inference_mode():
            model = model_cls.from_config(hf_config, build)
            loader.load_weights(model, source, hf_config)
        _process_after_loading(model)
    with log.phase("tokenizer"):
        tokenizer = _load_tokenizer(loader, source, config.model.tokenizer)
    kv_spec = model.kv_cache_spec()
    block_size = config.cache.block_size
    max_num_tokens = config.scheduler.max_num_batched_tokens
    graphs_wanted = not config.enforce_eager and platform_has_graphs
    with log.phase("attention backend"):
        backend_cls, backend_spec = _pick_attention_backend(
            log, host, config, platform, kv_spec, device.type, needs_graphs=graphs_wanted)

        def make_backend(max_model_len: int) -> Any:
            return backend_cls(AttentionBackendConfig(
                device=str(device), dtype=config.model.dtype, block_size=block_size,
                num_layers=kv_spec.num_layers, max_num_reqs=config.scheduler.max_num_seqs,
                max_num_tokens=max_num_tokens, max_model_len=max_model_len,
            ))

        backend = make_backend(max_model_len)
        use_graphs = graphs_wanted and backend_spec.capabilities.supports_graphs
        if graphs_wanted and not use_graphs:
            log.note(f"decode graphs off: attention backend {backend_spec.name} does not support "
                     "graph capture")
    with log.phase("ops"):
        install_ops(log, host, device.type, config.model.dtype, needs_graphs=use_graphs)
    with log.phase("kv cache"):
        in_use = 0
        if device.type == "cuda" and config.cache.kv_cache_memory_bytes is None \
                and config.cache.num_gpu_blocks_override is None:
            from tenon.worker.memory_profile import profile_step_memory

            with platform.inference_mode():
                profile = profile_step_memory(
                    model=model, attention_backend=backend, kv_spec=kv_spec, block_size=block_size,
                    dtype=dtype, device=device, max_num_tokens=max_num_tokens,
                    max_num_seqs=config.scheduler.max_num_seqs, max_model_len=max_model_len,
                    vocab_size=int(hf_config.vocab_size), with_graphs=use_graphs,
                )
            log.note(profile.describe())
            in_use = profile.in_use_bytes + profile.peak_activation_bytes + profile.graph_reserve_bytes
        num_blocks = num_blocks_for(
            spec=kv_spec, block_size=block_size, dtype=dtype, device=device,
            memory=platform.memory_info(device),
            gpu_memory_utilization=config.cache.gpu_memory_utilization,
            kv_cache_memory_bytes=config.cache.kv_cache_memory_bytes,
            num_blocks_override=config.cache.num_gpu_blocks_override,
            in_use_bytes=in_use,
            max_useful_blocks=config.scheduler.max_num_seqs * -(-max_model_len // block_size),
        )
        if config.cache.num_gpu_blocks_override is None:
            fitted = fit_max_model_len(max_model_len, (num_blocks - 1) * block_size,
                                       given=args.max_model_len is not None, block_size=block_size)
            if fitted != max_model_len:
                log.note(f"max model len fitted to the KV cache: {fitted} tokens (the model allows "
                         f"{max_model_len}; set --max-model-len or raise --gpu-memory-utilization)")
                max_model_len = config.model.max_model_len = fitted
                backend = make_backend(max_model_len)
        config.cache.num_blocks = num_blocks
        kv_cache, kv_layers = allocate_kv_cache(kv_spec, num_blocks, block_size, dtype, device)
        log.note(f"KV cache: {num_blocks - 1} blocks of {block_size} tokens "
                 f"({(num_blocks - 1) * block_size} tokens, {kv_cache.nbytes / 2**20:.0f} MiB)")
    if device.type != "cpu":  # compiled kernels: no request should wait for a compile
        with log.phase("warm-up"):
            from tenon.worker.kernel_warm_up import warm_up_prefill

            with platform.inference_mode():
                lengths = warm_up_prefill(
                    model=model, attention_backend=backend, kv_layers=kv_layers,
                    num_kv_blocks=num_blocks, block_size=block_size,
                    vocab_size=int(hf_config.vocab_size), device=device,
                    max_query_len=min(max_num_tokens, max_model_len),
                )
            if lengths:
                log.note(f"warmed up steps of query lengths {lengths[0]} to {lengths[-1]}")
    with log.phase("runner"):
        max_blocks_per_req = -(-max_model_len // block_size)
        buffers = InputBuffers(
            max_num_reqs=config.scheduler.max_num_seqs, max_num_tokens=max_num_tokens,
            max_blocks_per_req=max_blocks_per_req, block_size=block_size, device=device,
            pin_memory=platform.pin_memory_available(),
        )
        vocab_size = int(hf_config.vocab_size)
        runner = ModelRunner(model=model, attention_backend=backend, kv_layers=kv_layers,
                             vocab_size=vocab_size, buffers=buffers, device=device, seed=config.model.seed,
                             eos_token_id=_eos_token_id(hf_config, tokenizer))
        worker = Worker(runner=runner, platform=platform, kv_cache=kv_cache)
        kv_manager = KVCacheManager(
            num_blocks=num_blocks, block_size=block_size,
            enable_caching=config.cache.enable_prefix_caching,
            hash_extra_keys=f"{config.model.model}|{config.model.dtype}|{block_size}".encode(),
        )
        config.scheduler.async_scheduling = _resolve_async_scheduling(
            args.async_scheduling, device_type=device.type, has_connector=connector_classes is not None)
        if config.scheduler.async_scheduling:
            log.note("asynchronous scheduling: the next step is scheduled while the device runs")
        kv_transfer = None
        if connector_classes is not None:
            kv_transfer, worker.kv_transfer = build_kv_transfer(
                connector_classes, kv_cache_manager=kv_manager, kv_cache=kv_cache, kv_layers=kv_layers)
        scheduler = Scheduler(
            kv_manager, max_num_seqs=config.scheduler.max_num_seqs,
            max_num_batched_tokens=max_num_tokens, max_model_len=max_model_len,
            enable_chunked_prefill=config.scheduler.enable_chunked_prefill, kv_transfer=kv_transfer,
            async_scheduling=config.scheduler.async_scheduling,
            schedule_conservativeness=config.scheduler.schedule_conservativeness,
        )
    if use_graphs:
        with log.phase("graphs"):
            capture_decode_graphs(log, runner, platform, device, args, config, hf_config, backend_spec.name)
    client = InProcessEngineClient(EngineCore(scheduler, worker))
    num_frozen = heap.freeze_startup_objects()
    log.note(f"froze {num_frozen} start-up objects out of the garbage collector's way")
    log.note(f"ready in {log.total_s:.2f} s: {config.model.served_model_name}, dtype {config.model.dtype}, "
             f"max model len {max_model_len}")
    return Engine(config=config, client=client, tokenizer=tokenizer, hf_config=hf_config, host=host,
                  startup=log, eos_token_id=_eos_token_id(hf_config, tokenizer))


def provisional_scheduler_config(args: EngineArgs) -> SchedulerConfig:
    """The scheduler config until the platform is known (`_resolve_batch_limits`): the user's
    batch limits, which are final, else the generic defaults."""
    return SchedulerConfig(
        max_num_seqs=args.max_num_seqs or GENERIC_BATCH_DEFAULTS.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens or GENERIC_BATCH_DEFAULTS.max_num_batched_tokens,
        enable_chunked_prefill=args.enable_chunked_prefill,
        schedule_conservativeness=args.schedule_conservativeness,
    )


def _resolve_batch_limits(log: StartupLog, config: EngineConfig, args: EngineArgs,
                          defaults: BatchDefaults) -> None:
    """The platform's --max-num-seqs / --max-num-batched-tokens where neither the user nor a
    `tenon_configure` hook changed the provisional generic values. Without chunked prefill a
    whole prompt must fit one step, so the default budget is at least --max-model-len."""
    scheduler = config.scheduler
    if args.max_num_seqs is None and scheduler.max_num_seqs == GENERIC_BATCH_DEFAULTS.max_num_seqs:
        scheduler.max_num_seqs = defaults.max_num_seqs
    if (args.max_num_batched_tokens is None
            and scheduler.max_num_batched_tokens == GENERIC_BATCH_DEFAULTS.max_num_batched_tokens):
        scheduler.max_num_batched_tokens = defaults.max_num_batched_tokens
        if not scheduler.enable_chunked_prefill:
            scheduler.max_num_batched_tokens = max(scheduler.max_num_batched_tokens,
                                                   config.model.max_model_len)
    log.note(f"batch limits: {scheduler.max_num_seqs} sequences, {scheduler.max_num_batched_tokens} "
             "tokens a step")


def _resolve_async_scheduling(requested: bool | None, *, device_type: str, has_connector: bool) -> bool:
    """On by default where a device runs beside the host; a CPU engine gains nothing from it."""
    if requested and has_connector:
        raise ValueError("--async-scheduling does not work with a KV connector yet; drop "
                         "--async-scheduling or the KV connector (--kv-transfer-config, "
                         "--kv-offloading-size)")
    if requested is None:
        return device_type != "cpu" and not has_connector
    return requested


def _pick_attention_backend(
    log: StartupLog, host: PluginHost, config: EngineConfig, platform: Any, kv_spec: Any,
    device_type: str, *, needs_graphs: bool,
) -> tuple[Any, Any]:
    """The attention backend class and its spec: the best graph-capable one when decode graphs
    are wanted and one fits, else the best that fits (decode then runs eagerly)."""
    requirements = Requirements(device_type=device_type, dtype=config.model.dtype,
                                head_size=kv_spec.head_size, block_size=config.cache.block_size)
    requested = config.plugins.attention_backend
    preferred = tuple(platform.preferred_attention_backends)
    if needs_graphs and requested is None:
        with_graphs = attrs.evolve(requirements, needs_graphs=True)
        if host.resolve(PluginKind.ATTENTION_BACKEND, with_graphs, preferred=preferred).chosen:
            requirements = with_graphs
    backend_cls, decision = host.select(PluginKind.ATTENTION_BACKEND, requirements,
                                        requested=requested, preferred=preferred)
    _log_decision(log, decision)
    return backend_cls, decision.chosen


def fit_max_model_len(max_model_len: int, cache_tokens: int, *, given: bool, block_size: int) -> int:
    """`max_model_len` when one request of that length fits the KV cache; else, when the user
    did not set it, the longest that fits (whole blocks). A given length that does not fit is
    an error, as in vLLM, since such a request could never be scheduled."""
    if max_model_len <= cache_tokens:
        return max_model_len
    if given:
        raise ValueError(
            f"--max-model-len {max_model_len} does not fit the KV cache ({cache_tokens} tokens); "
            "lower --max-model-len, or raise --gpu-memory-utilization or --kv-cache-memory-bytes"
        )
    if cache_tokens < block_size:
        raise ValueError(f"the KV cache holds only {cache_tokens} tokens; raise "
                         "--gpu-memory-utilization or --kv-cache-memory-bytes")
    return cache_tokens // block_size * block_size


def install_ops(log: StartupLog, host: PluginHost, device_type: str, dtype: str, *,
                needs_graphs: bool) -> None:
    """Pick one implementation per kernel op (`tenon.spec.ops`) and install it for the device."""
    from tenon.layers import ops, ops_reference
    from tenon.spec.ops import OP_NAMES

    table = {}
    for op in OP_NAMES:
        function, decision = host.select(
            PluginKind.OP, Requirements(op=op, device_type=device_type, dtype=dtype,
                                        needs_graphs=needs_graphs))
        verdict = decision.chosen_verdict
        assert decision.chosen is not None
        log.slot(f"op {op}", decision.chosen.name, "; ".join(verdict.reasons) if verdict else "")
        table[op] = None if function is getattr(ops_reference, op, None) else function
    ops.install(device_type, table)


def _default_served_name(requested: str | None, path: Any) -> str:
    from tenon.default_model import DEFAULT_MODEL_NAME

    return DEFAULT_MODEL_NAME if requested is None else str(requested)


def _process_after_loading(model: Any) -> None:
    from tenon.layers.linear import process_weights_after_loading

    process_weights_after_loading(model)
    model.eval()


def _load_tokenizer(loader: Any, source: Any, tokenizer_path: str | None) -> Any | None:
    if tokenizer_path is not None:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(tokenizer_path)
    return loader.load_tokenizer(source)


def _eos_token_id(hf_config: Any, tokenizer: Any | None) -> int | None:
    if tokenizer is not None and getattr(tokenizer, "eos_token_id", None) is not None:
        return int(tokenizer.eos_token_id)
    eos = getattr(hf_config, "eos_token_id", None)
    if isinstance(eos, list):
        return int(eos[0]) if eos else None
    return int(eos) if eos is not None else None
