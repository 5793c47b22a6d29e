"""The KV connector suite: a connector between real engines on a tiny random Llama.

    from tenon.testing import KVConnectorConformance

    class TestMyConnector(KVConnectorConformance):
        spec = MY_SPEC                                  # the KVConnectorSpec your hook returns

        def extra_config(self, store):                  # kv_connector_extra_config for a
            return {"path": str(store)}                 # fresh store in the folder `store`

        def damage_stored_blocks(self, store, how):     # optional: "corrupt", "truncate" or
            ...                                         # "delete" every stored block; return
                                                        # how many (the fault checks skip without)

The reference is the same engine without a connector. Checks, each with fresh engines and a
fresh store: prefill/decode disaggregation (producer then consumer: same greedy tokens, the
consumer computes at most the prompt's last block); an engine restart on a kept store;
loads beside running requests; preemption of requests that loaded; a load that fails (blocks
scrambled and reported, or the connector raising) and a store damaged just before the load,
recomputed with the same tokens and counted; requests aborted after loading or while
producing, leaving every block free. Without its package installed, the suite publishes
`spec` through a temporary entry point.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tenon.plugin_host.targets import import_target
from tenon.spec import KVConnectorSpec
from tenon.spec.kv_connector import KVConnectorScheduler, KVConnectorWorker
from tenon.testing.kv_connector_harness import (
    BLOCK_SIZE,
    ENGINE_ARGS,
    FaultInjector,
    RunResult,
    engine_core,
    published,
    run_requests,
    tiny_llama_dir,
    transfer_config,
)
from tenon.testing.suite import ConformanceSuite

MAX_TOKENS = 6
# Prompt lengths: a partial last block, an exact multiple, longer, and less than one block.
PROMPT_LENS = (13, 16, 23, 3)


def _loadable_tokens(prompt: Sequence[int]) -> int:
    """Whole blocks short of the last token: what a consumer may load."""
    return (len(prompt) - 1) // BLOCK_SIZE * BLOCK_SIZE


class KVConnectorConformance(ConformanceSuite):
    spec: ClassVar[KVConnectorSpec]

    def extra_config(self, store: Path) -> dict[str, Any]:
        """`kv_connector_extra_config` for a fresh store kept in the folder `store`."""
        return {}

    def damage_stored_blocks(self, store: Path, how: str) -> int:
        """Damage every block stored under `store` ("corrupt": change payload bytes,
        "truncate": cut it short, "delete": remove it); return how many."""
        pytest.skip("damage_stored_blocks is not implemented for this connector")

    def parameters(self) -> Mapping[str, Sequence[Any]]:
        return {"how": ("corrupt", "truncate", "delete")}

    # --- fixtures (built once per suite) ---------------------------------------------------

    def model_dir(self) -> Path:
        def build() -> tuple[Path, Any]:
            folder = tempfile.TemporaryDirectory(prefix="tenon-kv-conformance-")
            return tiny_llama_dir(Path(folder.name) / "model"), folder

        return self.shared("model", build)[0]

    def prompts(self) -> dict[str, list[int]]:
        from tenon.testing.hf_reference import VOCAB_SIZE, random_prompts

        prompts = random_prompts(PROMPT_LENS, VOCAB_SIZE, seed=11)
        return {f"p{i}": prompt for i, prompt in enumerate(prompts)}

    def reference(self) -> dict[str, list[int]]:
        """Greedy tokens of each prompt from an engine without a connector."""

        def build() -> dict[str, list[int]]:
            llm = self.engine(None, None)
            try:
                arrivals = {0: list(self.prompts().items())}
                return run_requests(llm, arrivals, max_tokens=MAX_TOKENS).token_ids
            finally:
                llm.shutdown()

        return self.shared("reference", build)

    def engine(self, role: str | None, store: Path | None, **overrides: Any) -> Any:
        from tenon import LLM

        args: dict[str, Any] = {**ENGINE_ARGS, **overrides}
        if role is not None:
            assert store is not None
            args["kv_transfer_config"] = transfer_config(
                self.spec.name, role, self.extra_config(store)
            )
        return LLM(str(self.model_dir()), **args)

    @contextlib.contextmanager
    def store(self) -> Iterator[Path]:
        """A fresh store folder, with the connector discoverable."""
        with tempfile.TemporaryDirectory(prefix="tenon-kv-store-") as folder, published(self.spec):
            yield Path(folder)

    def produce(self, store: Path, prompts: Mapping[str, Sequence[int]] | None = None) -> None:
        """A producer engine prefills `prompts` (all by default) into the store, then exits."""
        roles = self.spec.capabilities.roles
        role = "kv_producer" if "kv_producer" in roles else "kv_both"
        llm = self.engine(role, store)
        try:
            run_requests(llm, {0: list((prompts or self.prompts()).items())}, max_tokens=1)
        finally:
            llm.shutdown()

    def consume(self, store: Path, **overrides: Any) -> Any:
        roles = self.spec.capabilities.roles
        return self.engine("kv_consumer" if "kv_consumer" in roles else "kv_both", store, **overrides)

    def check_outputs(self, result: RunResult, *, all_loaded: bool) -> None:
        reference = self.reference()
        for request_id, token_ids in result.token_ids.items():
            assert token_ids == reference[request_id], f"{request_id}: tokens differ"
        if all_loaded:
            prompts = self.prompts()
            for request_id, cached in result.num_cached_tokens.items():
                assert cached == _loadable_tokens(prompts[request_id]), (
                    f"{request_id}: {cached} tokens cached, expected every whole block short of "
                    f"the last token ({_loadable_tokens(prompts[request_id])})"
                )

    @staticmethod
    def check_all_blocks_free(llm: Any) -> None:
        core = engine_core(llm)
        assert not core.has_work(), "the engine still has work after its requests ended"
        assert core.scheduler.kv_cache_manager.usage == 0.0, "blocks still held after the run"

    # --- checks ------------------------------------------------------------------------------

    def test_spec_targets_are_the_two_sides(self) -> None:
        assert issubclass(import_target(self.spec.target), KVConnectorScheduler)
        assert issubclass(import_target(self.spec.worker_target), KVConnectorWorker)

    def test_disaggregation_matches_a_single_engine(self) -> None:
        with self.store() as store:
            self.produce(store)
            llm = self.consume(store)
            try:
                result = run_requests(llm, {0: list(self.prompts().items())}, max_tokens=MAX_TOKENS)
                self.check_outputs(result, all_loaded=True)
                stats = llm.engine.client.stats()
                hit_tokens = sum(_loadable_tokens(p) for p in self.prompts().values())
                assert stats.kv_connector_hit_tokens_total == hit_tokens
                assert stats.kv_connector_failed_blocks_total == 0
                block_bytes = engine_core(llm).scheduler.kv_transfer.block_bytes
                assert stats.kv_connector_load_bytes_total == hit_tokens // BLOCK_SIZE * block_bytes
                self.check_all_blocks_free(llm)
            finally:
                llm.shutdown()

    def test_restarted_engine_finds_what_it_stored(self) -> None:
        if "kv_both" not in self.spec.capabilities.roles:
            pytest.skip("the connector does not serve kv_both")
        with self.store() as store:
            for run in range(2):
                llm = self.engine("kv_both", store)
                try:
                    result = run_requests(llm, {0: list(self.prompts().items())}, max_tokens=MAX_TOKENS)
                    self.check_outputs(result, all_loaded=run == 1)
                finally:
                    llm.shutdown()

    def test_loads_beside_running_requests(self) -> None:
        prompts = self.prompts()
        with self.store() as store:
            self.produce(store, {"p1": prompts["p1"], "p2": prompts["p2"]})
            llm = self.consume(store, max_num_batched_tokens=8)  # chunked prefill
            try:
                arrivals = {0: [("p0", prompts["p0"]), ("p3", prompts["p3"])],
                            2: [("p1", prompts["p1"])], 3: [("p2", prompts["p2"])]}
                result = run_requests(llm, arrivals, max_tokens=MAX_TOKENS)
                self.check_outputs(result, all_loaded=False)
                assert result.num_cached_tokens["p1"] == _loadable_tokens(prompts["p1"])
                assert result.num_cached_tokens["p2"] == _loadable_tokens(prompts["p2"])
                self.check_all_blocks_free(llm)
            finally:
                llm.shutdown()

    def test_preempted_requests_that_loaded(self) -> None:
        with self.store() as store:
            self.produce(store)
            # Without KV reservation (vLLM's admit-then-preempt) so that the small cache preempts.
            llm = self.consume(store, num_gpu_blocks_override=9, schedule_conservativeness=0.0)
            try:
                result = run_requests(llm, {0: list(self.prompts().items())}, max_tokens=MAX_TOKENS)
                self.check_outputs(result, all_loaded=False)
                assert llm.engine.client.stats().num_preemptions_total > 0, "nothing was preempted"
                self.check_all_blocks_free(llm)
            finally:
                llm.shutdown()

    def test_failed_load_is_recomputed(self) -> None:
        with self.store() as store:
            self.produce(store)
            llm = self.consume(store)
            try:
                injector = FaultInjector.install(llm, scramble=True)
                result = run_requests(llm, {0: list(self.prompts().items())}, max_tokens=MAX_TOKENS)
                self.check_outputs(result, all_loaded=False)
                stats = llm.engine.client.stats()
                assert injector.scrambled_block_ids, "the loads wrote no block"
                assert stats.kv_connector_failed_blocks_total == len(injector.scrambled_block_ids)
                assert stats.kv_connector_recomputed_requests_total == 3  # every prompt but p3
                self.check_all_blocks_free(llm)
            finally:
                llm.shutdown()

    def test_connector_raising_during_load(self) -> None:
        with self.store() as store:
            self.produce(store)
            llm = self.consume(store)
            try:
                FaultInjector.install(llm, raise_on_load=True)
                result = run_requests(llm, {0: list(self.prompts().items())}, max_tokens=MAX_TOKENS)
                self.check_outputs(result, all_loaded=False)
                assert llm.engine.client.stats().kv_connector_recomputed_requests_total == 3
                self.check_all_blocks_free(llm)
            finally:
                llm.shutdown()

    def test_damaged_store_is_detected(self, how: str) -> None:
        with self.store() as store:
            self.produce(store)
            llm = self.consume(store)
            try:
                damaged: list[int] = []
                FaultInjector.install(
                    llm, before_load=lambda _: damaged.append(self.damage_stored_blocks(store, how))
                )
                result = run_requests(llm, {0: list(self.prompts().items())}, max_tokens=MAX_TOKENS)
                self.check_outputs(result, all_loaded=False)
                assert damaged and damaged[0] > 0, "damage_stored_blocks damaged nothing"
                stats = llm.engine.client.stats()
                assert stats.kv_connector_failed_blocks_total > 0, f"a {how} block went unnoticed"
                assert stats.kv_connector_recomputed_requests_total > 0
                self.check_all_blocks_free(llm)
            finally:
                llm.shutdown()

    def test_requests_aborted_after_loading_or_while_producing(self) -> None:
        prompts = self.prompts()
        with self.store() as store:
            roles = self.spec.capabilities.roles
            producer = self.engine("kv_producer" if "kv_producer" in roles else "kv_both", store)
            try:  # aborted mid-decode: whatever the connector saves of it must be sound
                run_requests(producer, {0: [("p2", prompts["p2"])]}, max_tokens=MAX_TOKENS,
                             aborts={2: ["p2"]})
                self.check_all_blocks_free(producer)
            finally:
                producer.shutdown()
            self.produce(store, {"p0": prompts["p0"], "p1": prompts["p1"]})
            llm = self.consume(store, max_num_batched_tokens=8)
            try:  # aborted in the step after its load
                arrivals = {0: [("p0", prompts["p0"]), ("p1", prompts["p1"])]}
                run_requests(llm, arrivals, max_tokens=MAX_TOKENS, aborts={1: ["p0"]})
                self.check_all_blocks_free(llm)
                result = run_requests(llm, {0: list(prompts.items())}, max_tokens=MAX_TOKENS)
                self.check_outputs(result, all_loaded=False)
                self.check_all_blocks_free(llm)
            finally:
                llm.shutdown()
