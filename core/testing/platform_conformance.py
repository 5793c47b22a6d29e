"""The platform suite: a smoke test of a `Platform` and of the engine running on it.

    from tenon.testing import PlatformConformance

    class TestMyPlatform(PlatformConformance):
        platform_class = MyPlatform
        spec = MY_PLATFORM_SPEC      # optional: checks the probe and what the spec declares

Checks: the probe returns a bool; the device has the declared type, tensors allocate and
compute there (a matmul matches the CPU's); `memory_info` is sane; `default_dtype` answers a
dtype the platform declares for every checkpoint dtype; streams, events and graphs are None or
usable, and a platform declaring graphs returns one; model code runs without autograd. Once the
package is installed, a tiny Llama checkpoint generates HF's greedy tokens with the engine
on this platform (`LLM(..., device=spec.name)`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from tenon.plugin_host import load_plugins
from tenon.plugin_host.targets import import_target
from tenon.spec import PlatformSpec, PluginKind, Requirements
from tenon.spec.platform import MemoryInfo, Platform
from tenon.testing import engine_checks
from tenon.testing.hf_reference import (
    TINY_CONFIG,
    hf_greedy,
    make_hf_model,
    random_prompts,
    save_model_dir,
)
from tenon.testing.suite import ConformanceSuite

DTYPES = ("float32", "bfloat16", "float16")


class PlatformConformance(ConformanceSuite):
    """Set `platform_class`; optionally `spec` (enables the probe and engine checks)."""

    platform_class: ClassVar[type[Platform]]
    spec: ClassVar[PlatformSpec | None] = None
    device_index: ClassVar[int] = 0

    def platform(self) -> Platform:
        return self.shared("platform", self.platform_class)

    def device(self) -> torch.device:
        return self.platform().device(self.device_index)

    def test_probe_returns_a_bool(self) -> None:
        if self.spec is None:
            pytest.skip("no `spec` set on the suite: the probe is not checked")
        result = import_target(self.spec.probe)()
        assert isinstance(result, bool), f"{self.spec.probe} returned {result!r}, not a bool"
        assert result, f"{self.spec.probe} says the platform is not usable on this machine"

    def test_spec_names_this_platform(self) -> None:
        if self.spec is None:
            pytest.skip("no `spec` set on the suite: its target is not checked")
        assert import_target(self.spec.target) is self.platform_class
        platform, capabilities = self.platform(), self.spec.capabilities
        assert platform.device_type == capabilities.device_type
        assert platform.collectives_backend == capabilities.collectives_backend

    def test_device_has_the_declared_type(self) -> None:
        device = self.device()
        assert isinstance(device, torch.device)
        assert device.type == self.platform().device_type

    def test_tensors_allocate_and_compute_there(self) -> None:
        generator = torch.Generator().manual_seed(0)
        left, right = torch.randn(8, 16, generator=generator), torch.randn(16, 4, generator=generator)
        device = self.device()
        product = left.to(device) @ right.to(device)  # [8, 4]
        self.platform().synchronize(device)
        assert product.device.type == device.type
        torch.testing.assert_close(product.cpu(), left @ right, atol=1e-4, rtol=1e-4)

    def test_memory_info_is_sane(self) -> None:
        memory = self.platform().memory_info(self.device())
        assert isinstance(memory, MemoryInfo)
        assert isinstance(memory.total_bytes, int) and isinstance(memory.free_bytes, int)
        assert 0 < memory.free_bytes <= memory.total_bytes, memory

    def test_default_dtype_is_declared(self) -> None:
        declared = self.spec.capabilities.dtypes if self.spec is not None else DTYPES
        for checkpoint_dtype in (None, *DTYPES):
            dtype = self.platform().default_dtype(checkpoint_dtype)
            assert dtype in DTYPES and dtype in declared, (
                f"default_dtype({checkpoint_dtype!r}) returned {dtype!r}; expected one of "
                f"{tuple(declared)}"
            )

    def test_streams_events_and_graphs(self) -> None:
        platform, device = self.platform(), self.device()
        platform.create_stream(device)  # None or a stream: both are allowed
        platform.create_event(device)
        graph = platform.create_graph()
        if self.spec is not None and self.spec.capabilities.supports_graphs:
            assert graph is not None, "the spec declares supports_graphs, create_graph gave None"
        if graph is not None:
            assert callable(getattr(graph, "capture", None)) and callable(graph.replay)
        assert isinstance(platform.pin_memory_available(), bool)
        assert all(isinstance(name, str) for name in platform.preferred_attention_backends)

    def test_inference_mode_disables_autograd(self) -> None:
        weight = torch.ones(2, 2, requires_grad=True)
        with self.platform().inference_mode():
            assert not torch.is_grad_enabled()
            assert not (weight * 2).requires_grad

    def test_engine_generates_reference_tokens(self) -> None:
        """The engine on this platform, on a tiny Llama, gives HF's greedy tokens."""
        if self.spec is None:
            pytest.skip("no `spec` set on the suite: the engine selects platforms by spec name")
        name = self.spec.name
        decision = load_plugins().resolve(PluginKind.PLATFORM, Requirements(), requested=name)
        if decision.chosen is None:
            pytest.skip(
                f"no installed plugin provides platform {name!r}: install the plugin's package "
                "(pip install -e .) to run the engine check"
            )
        directory, prompts, expected = self.shared("tiny_llama", _tiny_llama)
        from tenon import LLM

        llm = LLM(directory.name, dtype="float32", device=name, log_startup=False)
        try:
            assert llm.engine.startup.slots["platform"] == name
            assert engine_checks.greedy_tokens(llm, prompts, len(expected[0])) == expected
        finally:
            llm.shutdown()


def _tiny_llama() -> tuple[tempfile.TemporaryDirectory[str], list[list[int]], list[list[int]]]:
    import transformers

    config = transformers.LlamaConfig(**TINY_CONFIG, num_key_value_heads=2)
    hf_model = make_hf_model(transformers.LlamaForCausalLM, config)
    directory = tempfile.TemporaryDirectory(prefix="tenon-platform-")
    save_model_dir(hf_model, Path(directory.name))
    prompts = random_prompts((3, 9), int(config.vocab_size), seed=1)
    expected: list[Any] = [hf_greedy(hf_model, prompt, 8) for prompt in prompts]
    return directory, prompts, expected
