"""--max-num-seqs and --max-num-batched-tokens: the platform's defaults where nobody set them,
the user's values and a `tenon_configure` hook's changes kept, and vLLM's rule on CUDA."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from tenon import LLM
from tenon.config import CacheConfig, EngineConfig, ModelConfig, PluginSelection
from tenon.engine_args import EngineArgs
from tenon.plugins.platforms.cpu import CpuPlatform
from tenon.spec.platform import BatchDefaults
from tenon.startup.engine_builder import _resolve_batch_limits, provisional_scheduler_config
from tenon.startup.phases import StartupLog
from tenon_cuda.platform import batch_defaults_for
from tests.helpers.tiny_model import make_tiny_model_dir

GiB = 2**30
LARGE = BatchDefaults(max_num_seqs=1024, max_num_batched_tokens=16384)


def resolved(args: EngineArgs, defaults: BatchDefaults, *, chunked: bool = True,
             configured: dict[str, int] | None = None) -> tuple[int, int]:
    """The batch limits the builder settles on for `args` on a platform giving `defaults`."""
    args = attrs.evolve(args, enable_chunked_prefill=chunked)
    config = EngineConfig(
        model=ModelConfig(model="m", served_model_name="m", max_model_len=20000),
        cache=CacheConfig(), scheduler=provisional_scheduler_config(args), plugins=PluginSelection(),
    )
    for name, value in (configured or {}).items():  # what a tenon_configure hook set
        setattr(config.scheduler, name, value)
    _resolve_batch_limits(StartupLog(echo=None), config, args, defaults)
    return config.scheduler.max_num_seqs, config.scheduler.max_num_batched_tokens


def test_platform_defaults_fill_what_nobody_set() -> None:
    assert resolved(EngineArgs(model="m"), LARGE) == (1024, 16384)
    assert resolved(EngineArgs(model="m", max_num_seqs=8), LARGE) == (8, 16384)
    assert resolved(EngineArgs(model="m", max_num_batched_tokens=512), LARGE) == (1024, 512)
    # The user's value stands even where it equals the generic default.
    assert resolved(EngineArgs(model="m", max_num_seqs=256, max_num_batched_tokens=8192), LARGE) == (256, 8192)


def test_a_configure_hooks_values_are_kept() -> None:
    configured = {"max_num_seqs": 64, "max_num_batched_tokens": 2048}
    assert resolved(EngineArgs(model="m"), LARGE, configured=configured) == (64, 2048)


def test_without_chunked_prefill_the_default_budget_holds_a_whole_prompt() -> None:
    assert resolved(EngineArgs(model="m"), LARGE, chunked=False) == (1024, 20000)
    # A budget the user chose is theirs: the scheduler names the conflict instead.
    assert resolved(EngineArgs(model="m", max_num_batched_tokens=4096), LARGE, chunked=False) == (1024, 4096)


def test_cuda_rule_follows_vllm_by_memory_and_card() -> None:
    assert batch_defaults_for(141 * GiB, "NVIDIA H200", "offline") == LARGE
    assert batch_defaults_for(80 * GiB, "NVIDIA H100 80GB HBM3", "server") == BatchDefaults(
        max_num_seqs=1024, max_num_batched_tokens=8192)
    # The A100 keeps the small defaults at any size; so does a 48 GiB card.
    for total_bytes, name in ((80 * GiB, "NVIDIA A100-SXM4-80GB"), (48 * GiB, "NVIDIA L40S")):
        assert batch_defaults_for(total_bytes, name, "offline") == BatchDefaults(
            max_num_seqs=256, max_num_batched_tokens=8192)
        assert batch_defaults_for(total_bytes, name, "server") == BatchDefaults(
            max_num_seqs=256, max_num_batched_tokens=2048)


def test_the_engine_takes_its_platforms_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model_dir = make_tiny_model_dir(tmp_path / "model")
    asked: list[str] = []

    def batch_defaults(self: CpuPlatform, device: object, usage: str) -> BatchDefaults:
        asked.append(usage)
        return BatchDefaults(max_num_seqs=3, max_num_batched_tokens=40)

    monkeypatch.setattr(CpuPlatform, "batch_defaults", batch_defaults)
    llm = LLM(str(model_dir), dtype="float32", max_model_len=64, log_startup=False)
    try:
        scheduler = llm.engine.config.scheduler
        assert (scheduler.max_num_seqs, scheduler.max_num_batched_tokens) == (3, 40)
        assert asked == ["offline"]
        assert "batch limits: 3 sequences, 40 tokens a step" in llm.engine.startup.notes
    finally:
        llm.shutdown()


def test_the_server_starts_its_engine_for_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    import tenon.startup.engine_builder as builder
    from tenon.server import engine_process

    usages: list[str] = []

    def build_engine(args: EngineArgs, *, log: object = None, usage: str = "offline") -> None:
        usages.append(usage)
        raise ValueError("stopped by the test")

    class Socket:
        def __init__(self) -> None:
            self.sent: list[bytes] = []

        def send(self, data: bytes) -> None:
            self.sent.append(data)

    monkeypatch.setattr(builder, "build_engine", build_engine)
    socket = Socket()
    assert engine_process._build({"model": "m"}, socket) is None  # type: ignore[arg-type]
    assert usages == ["server"] and len(socket.sent) == 1  # StartupFailed went out
