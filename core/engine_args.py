"""The flat, user-facing engine arguments: CLI flags and `LLM(**kwargs)` share one definition.

Flag names are vLLM's (`--max-model-len`, `--max-num-seqs`, ...), generated from the field names
here, so the CLI, the offline API and the docs cannot drift apart.
"""

from __future__ import annotations

import argparse
import difflib
from typing import Any

import attrs

from tenon.kv_transfer_config import parse_kv_transfer_config

DTYPE_ALIASES = {
    "auto": "auto",
    "float32": "float32",
    "float": "float32",
    "bfloat16": "bfloat16",
    "float16": "float16",
    "half": "float16",
}


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@attrs.define(kw_only=True)
class EngineArgs:
    model: str | None = attrs.field(
        default=None, metadata=_help("model directory or .gguf file (default: SmolLM2-135M-Instruct)")
    )
    tokenizer: str | None = attrs.field(default=None, metadata=_help("tokenizer directory"))
    served_model_name: str | None = attrs.field(default=None, metadata=_help("name in the API"))
    dtype: str = attrs.field(default="auto", metadata=_help("auto, float32, bfloat16, float16"))
    max_model_len: int | None = attrs.field(
        default=None, metadata=_help("context length (default: the model's, fitted to memory)")
    )
    seed: int = attrs.field(default=0, metadata=_help("seed for unseeded random sampling"))
    load_format: str = attrs.field(default="auto", metadata=_help("auto, safetensors, gguf, dummy, or a loader plugin's format"))
    block_size: int = attrs.field(default=16, metadata=_help("tokens per KV cache block"))
    enable_prefix_caching: bool = attrs.field(default=True, metadata=_help("reuse cached prefixes"))
    gpu_memory_utilization: float = attrs.field(
        default=0.9, metadata=_help("fraction of device memory for weights, activations and KV")
    )
    kv_cache_memory_bytes: int | None = attrs.field(
        default=None, metadata=_help("KV cache size in bytes (overrides the memory fraction)")
    )
    num_gpu_blocks_override: int | None = attrs.field(
        default=None, metadata=_help("exact number of KV cache blocks (testing)")
    )
    max_num_seqs: int | None = attrs.field(
        default=None,
        metadata=_help("most requests in one step (default: the platform's; CUDA: 1024 on cards "
                       "of 70 GiB or more except the A100, else 256; CPU: 256)"),
    )
    max_num_batched_tokens: int | None = attrs.field(
        default=None,
        metadata=_help("token budget per step (default: the platform's; CUDA from 70 GiB: 16384 "
                       "offline, 8192 serving; smaller cards 8192 / 2048; CPU: 8192)"),
    )
    enable_chunked_prefill: bool = attrs.field(
        default=True, metadata=_help("split long prompts across steps")
    )
    schedule_conservativeness: float = attrs.field(
        default=1.0,
        metadata=_help("KV reservation at admission, as in SGLang: a waiting request starts only "
                       "while the free cache holds what the running ones are expected to need "
                       "(ignore_eos requests: their whole length); higher reserves more, 0 turns "
                       "it off (vLLM's policy: admit, preempt when full)"),
    )
    device: str | None = attrs.field(default=None, metadata=_help("platform name (default: probe)"))
    attention_backend: str | None = attrs.field(
        default=None, metadata=_help("attention backend name (default: best that fits)")
    )
    quantization: str | None = attrs.field(default=None, metadata=_help("quantization scheme"))
    enforce_eager: bool = attrs.field(default=False, metadata=_help("never capture device graphs"))
    async_scheduling: bool | None = attrs.field(
        default=None,
        metadata=_help("schedule the next step while the device runs this one (default: on for "
                       "accelerators without a KV connector, off on the CPU)"),
    )
    cuda_graph_sizes: list[int] | None = attrs.field(
        default=None,
        metadata=_help("decode batch sizes to capture as device graphs (default: 1 2 4 8, "
                       "multiples of 16 up to 256, of 32 up to 512, of 64 up to 1024, as far as "
                       "--max-num-seqs); larger batches run eagerly"),
    )
    kv_transfer_config: str | dict[str, Any] | None = attrs.field(
        default=None,
        metadata=_help('KV connector as JSON, vLLM\'s shape: {"kv_connector": NAME, "kv_role": '
                       '"kv_producer"|"kv_consumer"|"kv_both", "kv_connector_extra_config": {...}}'),
    )

    kv_offloading_size: float | None = attrs.field(
        default=None,
        metadata=_help("GiB of host memory for the CPU KV tier (pinned on GPUs); turns on KV "
                       "offloading (the OffloadingConnector), as in vLLM"),
    )
    kv_offloading_dir: str | None = attrs.field(
        default=None,
        metadata=_help("directory of the disk KV tier, below the CPU tier; survives restarts "
                       "(needs --kv-offloading-disk-size)"),
    )
    kv_offloading_disk_size: float | None = attrs.field(
        default=None, metadata=_help("GiB the disk KV tier may use in --kv-offloading-dir")
    )

    def __attrs_post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the flag and what to change."""
        if self.dtype not in DTYPE_ALIASES:
            raise ValueError(f"--dtype {self.dtype!r} is not supported; use one of {', '.join(DTYPE_ALIASES)}")
        if not self.load_format:
            raise ValueError("--load-format must name a format (auto, safetensors, gguf, dummy, or a plugin's)")
        positive = {
            "block_size": self.block_size,
            "max_num_seqs": self.max_num_seqs,
            "max_model_len": self.max_model_len,
            "max_num_batched_tokens": self.max_num_batched_tokens,
            "num_gpu_blocks_override": self.num_gpu_blocks_override,
            "kv_cache_memory_bytes": self.kv_cache_memory_bytes,
        }
        for name, value in positive.items():
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.cuda_graph_sizes is not None and any(size < 1 for size in self.cuda_graph_sizes):
            raise ValueError(f"--cuda-graph-sizes must be positive, got {self.cuda_graph_sizes}")
        parse_kv_transfer_config(self.kv_transfer_config)  # raises ValueError naming the fix
        self._validate_kv_offloading()
        if not self.schedule_conservativeness >= 0.0:
            raise ValueError(
                f"--schedule-conservativeness must be >= 0 (0 turns KV reservation off), "
                f"got {self.schedule_conservativeness}"
            )
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise ValueError(
                f"--gpu-memory-utilization must be in (0, 1], got {self.gpu_memory_utilization}"
            )

    def _validate_kv_offloading(self) -> None:
        for name, value in (("kv_offloading_size", self.kv_offloading_size),
                            ("kv_offloading_disk_size", self.kv_offloading_disk_size)):
            if value is not None and not value > 0:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be a positive number of GiB, got {value}; "
                    "leave it unset to turn that tier off"
                )
        if self.kv_offloading_dir is not None and self.kv_offloading_disk_size is None:
            raise ValueError(
                f"--kv-offloading-dir {self.kv_offloading_dir!r} needs --kv-offloading-disk-size "
                "(GiB the disk tier may fill)"
            )
        if self.kv_offloading_dir is None and self.kv_offloading_disk_size is not None:
            raise ValueError("--kv-offloading-disk-size needs --kv-offloading-dir (where to write)")
        if self.kv_offloading_dir == "":
            raise ValueError("--kv-offloading-dir must name a directory")

    def kv_offloading_cache_fields(self) -> dict[str, Any]:
        """The `CacheConfig` fields the --kv-offloading-* flags set (sizes in bytes)."""

        def gib_to_bytes(size_gib: float | None) -> int | None:
            return None if size_gib is None else int(size_gib * (1 << 30))

        return {
            "kv_offloading_bytes": gib_to_bytes(self.kv_offloading_size),
            "kv_offloading_dir": self.kv_offloading_dir,
            "kv_offloading_disk_bytes": gib_to_bytes(self.kv_offloading_disk_size),
        }

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> EngineArgs:
        """Like the constructor, but an unknown argument names the closest known one."""
        known = [field.name for field in attrs.fields(cls)]
        for key in kwargs:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise TypeError(f"unknown engine argument {key!r}{hint}")
        return cls(**kwargs)

    @classmethod
    def add_cli_args(cls, parser: argparse.ArgumentParser, *, with_model: bool = True) -> None:
        """Add one `--flag` per field (the model is positional in most commands)."""
        for field in attrs.fields(cls):
            if field.name == "model" and not with_model:
                continue
            flag = "--" + field.name.replace("_", "-")
            help_text = field.metadata.get("help", "")
            if field.type in ("bool", bool, "bool | None"):
                parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default, help=help_text)
                continue
            if str(field.type) == "list[int] | None":
                parser.add_argument(flag, type=int, nargs="+", default=field.default, help=help_text)
                continue
            kind = {"int | None": int, "int": int, "float": float, "float | None": float}.get(
                str(field.type), str)
            parser.add_argument(flag, type=kind, default=field.default, help=help_text)

    @classmethod
    def from_cli_args(cls, args: argparse.Namespace) -> EngineArgs:
        values = {f.name: getattr(args, f.name) for f in attrs.fields(cls) if hasattr(args, f.name)}
        return cls(**values)
