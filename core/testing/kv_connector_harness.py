"""What the KV connector suite drives engines with: a tiny model, request-level stepping, and a
fault injector that wraps a running engine's worker-side connector.

    engine A (kv_producer) ──store──> connector's store ──load──> engine B (kv_consumer)
                                                         ^
                               FaultInjector: damage the store just before the load, or let
                               the load run, scramble what it wrote and report it failed

Everything runs on the CPU in float32 with blocks of `BLOCK_SIZE` tokens.
"""

from __future__ import annotations

import contextlib
import json
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch

from tenon.spec import KVConnectorSpec, PluginKind, hookimpl
from tenon.spec.kv_connector import KVConnectorWorker

BLOCK_SIZE = 4
ENGINE_ARGS: Mapping[str, Any] = {
    "dtype": "float32",
    "block_size": BLOCK_SIZE,
    "num_gpu_blocks_override": 64,
    "max_model_len": 128,
    "enforce_eager": True,
    "log_startup": False,
}


def tiny_llama_dir(directory: Path) -> Path:
    """A tiny random HF Llama checkpoint (two layers, GQA) the engine loads."""
    import transformers

    from tenon.testing.hf_reference import TINY_CONFIG, make_hf_model, save_model_dir

    config = transformers.LlamaConfig(**TINY_CONFIG, num_key_value_heads=2)
    return save_model_dir(make_hf_model(transformers.LlamaForCausalLM, config), directory)


def transfer_config(name: str, role: str, extra_config: Mapping[str, Any]) -> str:
    return json.dumps(
        {"kv_connector": name, "kv_role": role, "kv_connector_extra_config": dict(extra_config)}
    )


@contextlib.contextmanager
def published(spec: KVConnectorSpec) -> Iterator[None]:
    """`spec` discoverable by the engine for the block: as installed when its package is, else
    through a temporary entry point (see `temporary_distribution`)."""
    from tenon.plugin_host import load_plugins
    from tenon.testing.distribution import temporary_distribution

    registered = {e.spec.name: e.spec for e in load_plugins().specs(PluginKind.KV_CONNECTOR)}
    installed = registered.get(spec.name)
    if installed is not None:
        assert isinstance(installed, KVConnectorSpec)
        assert (installed.target, installed.worker_target) == (spec.target, spec.worker_target), (
            f"the installed KV connector {spec.name!r} names {installed.target} and "
            f"{installed.worker_target}, not the suite's spec"
        )
        yield
        return
    module = types.ModuleType(f"tenon_kv_conformance_{spec.name.lower().replace('-', '_')}")

    @hookimpl
    def tenon_kv_connectors() -> list[KVConnectorSpec]:
        return [spec]

    module.tenon_kv_connectors = tenon_kv_connectors  # type: ignore[attr-defined]
    with temporary_distribution(f"kv-conformance-{spec.name}", module):
        yield


@attrs.frozen(kw_only=True)
class RunResult:
    token_ids: dict[str, list[int]]
    num_cached_tokens: dict[str, int]
    finish_reasons: dict[str, str | None]


def run_requests(
    llm: Any,
    arrivals: Mapping[int, Sequence[tuple[str, Sequence[int]]]],
    *,
    max_tokens: int,
    aborts: Mapping[int, Sequence[str]] | None = None,
    max_num_steps: int = 500,
) -> RunResult:
    """Greedy requests added (and aborted) at given engine steps, stepped until idle."""
    from tenon.engine.request import Request
    from tenon.sampling.params import SamplingParams

    client = llm.engine.client
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)
    aborts = aborts or {}
    tokens: dict[str, list[int]] = {}
    cached: dict[str, int] = {}
    finish: dict[str, str | None] = {}
    last_step = max([*arrivals, *aborts], default=0)
    for step in range(max_num_steps):
        for request_id, prompt in arrivals.get(step, ()):
            client.add_request(Request(request_id, list(prompt), params, arrival_time_s=0.0))
            tokens[request_id] = []
        if aborts.get(step):
            client.abort_requests(aborts[step])
            finish.update({request_id: "abort" for request_id in aborts[step]})
        for output in client.get_outputs():
            tokens[output.request_id].extend(output.new_token_ids)
            cached[output.request_id] = output.num_cached_tokens
            if output.finish_reason is not None:
                finish[output.request_id] = output.finish_reason
        if step >= last_step and not llm.engine.client.core.has_work():
            return RunResult(token_ids=tokens, num_cached_tokens=cached, finish_reasons=finish)
    raise AssertionError(f"requests still running after {max_num_steps} steps")


def engine_core(llm: Any) -> Any:
    return llm.engine.client.core


class FaultInjector(KVConnectorWorker):
    """Wraps a worker-side connector inside a running engine (`install`) and fails loads:

    - `before_load`: called with the step metadata before the first `faulty_steps` steps
      that load (damage the store there: the connector must notice);
    - `scramble`: let those loads run, then overwrite every block they wrote with random
      values and report those blocks failed (the engine must recompute, never use them);
    - `raise_on_load`: raise from `start_load` instead (the engine fails the step's loads).
    Which steps load is asked of the engine's scheduler (`loading_step`)."""

    def __init__(
        self,
        inner: KVConnectorWorker,
        kv_cache: torch.Tensor,
        loading_step: Callable[[], bool],
        *,
        before_load: Callable[[Any], None] | None = None,
        scramble: bool = False,
        raise_on_load: bool = False,
        faulty_steps: int = 1,
    ) -> None:
        super().__init__(role=inner.role, extra_config=inner.extra_config)
        self.inner = inner
        self.kv_cache = kv_cache
        self.loading_step = loading_step
        self.before_load = before_load
        self.scramble = scramble
        self.raise_on_load = raise_on_load
        self.faulty_steps_left = faulty_steps
        self.scrambled_block_ids: set[int] = set()
        self._snapshot: torch.Tensor | None = None
        self._failed: set[int] = set()
        self._generator = torch.Generator().manual_seed(0)

    @classmethod
    def install(cls, llm: Any, **options: Any) -> FaultInjector:
        core = engine_core(llm)
        worker, scheduler_side = core.executor, core.scheduler.kv_transfer
        transfer = worker.kv_transfer
        assert transfer is not None and scheduler_side is not None, "the engine has no KV connector"
        injector = cls(transfer.connector, worker.kv_cache,
                       lambda: bool(scheduler_side.step_loads), **options)
        transfer.connector = injector
        return injector

    def register_kv_cache(self, kv_cache: torch.Tensor, block_size: int) -> None:
        self.inner.register_kv_cache(kv_cache, block_size)

    def start_load(self, step_metadata: Any) -> None:
        faulty = self.faulty_steps_left > 0 and self.loading_step()
        self._snapshot = None
        if faulty:
            self.faulty_steps_left -= 1
            if self.before_load is not None:
                self.before_load(step_metadata)
            if self.raise_on_load:
                raise RuntimeError("injected failure in start_load")
            if self.scramble:
                self._snapshot = self.kv_cache.clone()
        self.inner.start_load(step_metadata)

    def wait_for_layer_load(self, layer_index: int) -> None:
        self.inner.wait_for_layer_load(layer_index)
        if self._snapshot is not None and layer_index == self.kv_cache.shape[1] - 1:
            # changed: [num_blocks], the blocks the loads wrote
            changed = (self.kv_cache != self._snapshot).flatten(1).any(dim=1)
            for block_id in changed.nonzero().flatten().tolist():
                noise = torch.randn(self.kv_cache[block_id].shape, generator=self._generator)
                self.kv_cache[block_id] = noise.to(self.kv_cache.dtype)
                self._failed.add(block_id)
            self.scrambled_block_ids |= self._failed
            self._snapshot = None

    def save_layer(self, layer_index: int, kv_layer: torch.Tensor, metadata: Any) -> None:
        self.inner.save_layer(layer_index, kv_layer, metadata)

    def wait_for_save(self) -> None:
        self.inner.wait_for_save()

    def finished_transfers(self) -> tuple[set[str], set[str]]:
        return self.inner.finished_transfers()

    def failed_block_ids(self) -> set[int]:
        failed, self._failed = self._failed, set()
        return failed | self.inner.failed_block_ids()

    def take_stored_bytes(self) -> int:
        take = getattr(self.inner, "take_stored_bytes", None)
        return int(take()) if take is not None else 0
