"""The scheduler with a KV connector: external tokens, deferred prefix caching, failed loads
recomputed, finished requests' blocks kept until their save is reported.

A fake runner plays the worker and the worker side of an in-memory connector. As in conftest's
FakeRunner, a KV slot holds the whole token prefix ending at its token, so a wrong load, a
stale block or a block read before its load shows; a load that fails writes garbage, and every
token sampled from garbage is marked (TAINTED) so the test sees if the scheduler lets one out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import pytest

from tenon.engine.kv_cache_manager import KVCacheManager
from tenon.engine.kv_connector_output import KVConnectorOutput
from tenon.engine.kv_transfer import KVTransferScheduler
from tenon.engine.request import Request
from tenon.engine.scheduler import Scheduler
from tenon.engine.scheduler_output import EngineCoreOutput, RunnerOutput, SchedulerOutput
from tenon.spec.kv_connector import ConnectorRequest, KVConnectorScheduler

BLOCK_SIZE = 4
TAINTED = -1
Slot = tuple[int, ...]  # the token prefix a KV slot was computed from


@attrs.define
class Store:
    """The external store: block hash -> the slots of that block."""

    blocks: dict[bytes, tuple[Slot, ...]] = attrs.field(factory=dict)
    failing_hashes: set[bytes] = attrs.field(factory=set)  # loads of these always fail


class DictConnector(KVConnectorScheduler):
    """Scheduler side over `extra_config["store"]`; `keep_blocks` answers on_request_finished."""

    def __init__(self, *, role: str, extra_config: Mapping[str, Any]) -> None:
        super().__init__(role=role, extra_config=extra_config)
        self.store: Store = extra_config["store"]
        self.offer_override: int | None = extra_config.get("offer_override")
        self.loads: list[tuple[str, int, bytes]] = []
        self.saves: list[tuple[str, tuple[tuple[int, bytes], ...]]] = []
        self.allocated: list[tuple[str, list[int], int]] = []
        self.finished: list[tuple[str, int, list[int]]] = []

    def num_external_tokens(self, request: ConnectorRequest, num_computed_tokens: int) -> int:
        if self.extra_config.get("lookup_raises"):
            raise ConnectionError("store unreachable")
        if self.offer_override is not None:
            return self.offer_override
        count = 0
        for block_hash in request.block_hashes[num_computed_tokens // BLOCK_SIZE :]:
            if block_hash not in self.store.blocks:
                break
            count += 1
        return count * BLOCK_SIZE  # the scheduler caps it below the last token

    def on_allocated(self, request: ConnectorRequest, block_ids: Sequence[int], num_external_tokens: int) -> None:
        self.allocated.append((request.request_id, list(block_ids), num_external_tokens))
        num_blocks = num_external_tokens // BLOCK_SIZE
        for index in range(len(block_ids) - num_blocks, len(block_ids)):
            self.loads.append((request.request_id, block_ids[index], request.block_hashes[index]))

    def build_step_metadata(self) -> dict[str, Any]:
        metadata = {"loads": self.loads, "saves": self.saves}
        self.loads, self.saves = [], []
        return metadata

    def on_request_finished(self, request: ConnectorRequest, block_ids: Sequence[int]) -> bool:
        self.finished.append((request.request_id, len(request.block_hashes), list(block_ids)))
        if self.role == "kv_consumer" or not request.block_hashes:
            return False
        blocks = tuple(zip(block_ids, request.block_hashes, strict=False))
        self.saves.append((request.request_id, blocks))
        return True


class TransferRunner:
    """The worker: per-request state from the scheduler's diffs, loads before the step, saves
    reported `save_delay_steps` steps after they were asked for."""

    def __init__(self, store: Store, *, save_delay_steps: int = 0) -> None:
        self.store = store
        self.save_delay_steps = save_delay_steps
        self.states: dict[str, list[Any]] = {}  # request id -> [token ids, block ids, computed]
        self.kv_slots: dict[tuple[int, int], Slot] = {}
        self.pending_saves: list[tuple[str, int]] = []  # (request id, steps left)

    def execute(self, output: SchedulerOutput) -> RunnerOutput:
        for request_id in output.finished_request_ids | output.preempted_request_ids:
            self.states.pop(request_id, None)
        for new in output.scheduled_new_requests:
            self.states[new.request_id] = [
                [*new.prompt_token_ids, *new.output_token_ids], list(new.block_ids), new.num_computed_tokens
            ]
        for cached in output.scheduled_cached_requests:
            state = self.states[cached.request_id]
            state[1].extend(cached.new_block_ids)
            assert state[2] == cached.num_computed_tokens
        metadata = output.kv_connector_metadata
        failed, tainted = set(), set()
        for request_id, block_id, block_hash in metadata["loads"]:
            if block_hash in self.store.failing_hashes:
                failed.add(block_id)
                tainted.add(request_id)
                for offset in range(BLOCK_SIZE):
                    self.kv_slots[block_id, offset] = (TAINTED,)
            else:
                for offset, slot in enumerate(self.store.blocks[block_hash]):
                    self.kv_slots[block_id, offset] = slot
        for request_id, blocks in metadata["saves"]:
            for block_id, block_hash in blocks:
                self.store.blocks.setdefault(
                    block_hash, tuple(self.kv_slots[block_id, o] for o in range(BLOCK_SIZE))
                )
            self.pending_saves.append((request_id, self.save_delay_steps))
        request_ids, sampled = [], []
        for request_id, num_tokens in output.num_scheduled_tokens.items():
            token_ids, block_ids, computed = self.states[request_id]
            end = computed + num_tokens
            for position in range(computed, end):
                self.kv_slots[block_ids[position // BLOCK_SIZE], position % BLOCK_SIZE] = tuple(
                    token_ids[: position + 1]
                )
            reads_garbage = False
            for position in range(end):
                slot = self.kv_slots[block_ids[position // BLOCK_SIZE], position % BLOCK_SIZE]
                if slot == (TAINTED,):
                    reads_garbage = True
                else:
                    assert slot == tuple(token_ids[: position + 1]), f"{request_id}: wrong KV at {position}"
            assert reads_garbage == (request_id in tainted)
            self.states[request_id][2] = end
            new_tokens = []
            if end == len(token_ids):
                new_tokens = [TAINTED if reads_garbage else 1000 + end]
                token_ids.extend(new_tokens)
            request_ids.append(request_id)
            sampled.append(new_tokens)
        done = {request_id for request_id, left in self.pending_saves if left == 0}
        self.pending_saves = [(r, left - 1) for r, left in self.pending_saves if left > 0]
        return RunnerOutput(
            request_ids=request_ids, sampled_token_ids=sampled,
            kv_connector_output=KVConnectorOutput(
                finished_sending=frozenset(done), failed_block_ids=frozenset(failed)
            ),
        )

    def step(self, scheduler: Scheduler) -> tuple[SchedulerOutput, list[EngineCoreOutput]]:
        output = scheduler.schedule()
        return output, scheduler.update_from_output(output, self.execute(output))


def make(role: str, store: Store, *, num_blocks: int = 16, caching: bool = True,
         **extra: Any) -> tuple[Scheduler, DictConnector]:
    manager = KVCacheManager(num_blocks, BLOCK_SIZE, caching, hash_extra_keys=b"test-model")
    connector = DictConnector(role=role, extra_config={"store": store, **extra})
    transfer = KVTransferScheduler(connector, manager, block_bytes=100)
    scheduler = Scheduler(manager, max_num_seqs=8, max_num_batched_tokens=64, max_model_len=64,
                          kv_transfer=transfer)
    return scheduler, connector


def run(scheduler: Scheduler, runner: TransferRunner, requests: Sequence[Request]) -> dict[str, list[EngineCoreOutput]]:
    for request in requests:
        scheduler.add_request(request)
    outputs: dict[str, list[EngineCoreOutput]] = {}
    for _ in range(100):
        if not (scheduler.has_unfinished_requests() or scheduler.has_pending_kv_transfers()):
            return outputs
        for output in runner.step(scheduler)[1]:
            outputs.setdefault(output.request_id, []).append(output)
    raise AssertionError("still running after 100 steps")


def tokens(outputs: list[EngineCoreOutput]) -> list[int]:
    return [token for output in outputs for token in output.new_token_ids]


def produced_store(request_factory: Any, prompt: list[int]) -> Store:
    store = Store()
    scheduler, _ = make("kv_producer", store)
    run(scheduler, TransferRunner(store), [request_factory("p", prompt, max_tokens=1)])
    return store


PROMPT = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]  # 2 full blocks, then 2 tokens


def test_producer_saves_its_full_blocks_and_keeps_them_until_done(request_factory: Any) -> None:
    store = Store()
    scheduler, connector = make("kv_producer", store)
    runner = TransferRunner(store, save_delay_steps=2)
    scheduler.add_request(request_factory("p", PROMPT, max_tokens=1))
    _, outputs = runner.step(scheduler)
    assert [(o.new_token_ids, o.finish_reason) for o in outputs] == [([1010], "length")]
    assert connector.finished == [("p", 2, [1, 2, 3])]  # 10 computed tokens: 2 full blocks
    assert scheduler.has_pending_kv_transfers() and scheduler.kv_cache_manager.usage > 0
    for _ in range(2):  # the save is reported on the third step after it was asked for
        runner.step(scheduler)
        assert scheduler.has_pending_kv_transfers()
    runner.step(scheduler)
    assert not scheduler.has_pending_kv_transfers()
    assert scheduler.kv_cache_manager.usage == 0.0
    assert [store.blocks[h][-1] for h in sorted(store.blocks, key=lambda h: len(store.blocks[h][-1]))] == [
        tuple(PROMPT[:4]), tuple(PROMPT[:8])
    ]
    counters = scheduler.kv_transfer.counters
    assert (counters.kv_connector_stores_total, counters.kv_connector_hit_tokens_total) == (1, 0)


@pytest.mark.parametrize("caching", [True, False])
def test_consumer_loads_whole_blocks_short_of_the_last_token(request_factory: Any, caching: bool) -> None:
    store = produced_store(request_factory, PROMPT)
    scheduler, connector = make("kv_consumer", store, caching=caching)
    runner = TransferRunner(store)
    scheduler.add_request(request_factory("c", PROMPT, max_tokens=3))
    output, outputs = runner.step(scheduler)
    [new] = output.scheduled_new_requests
    assert (new.block_ids, new.num_computed_tokens) == ([1, 2, 3], 8)
    assert output.num_scheduled_tokens == {"c": 2}
    assert connector.allocated == [("c", [1, 2], 8)]
    assert output.kv_connector_metadata["loads"] == [
        ("c", 1, scheduler.requests["c"].block_hashes[0]),
        ("c", 2, scheduler.requests["c"].block_hashes[1]),
    ]
    assert [(o.new_token_ids, o.num_cached_tokens) for o in outputs] == [([1010], 8)]
    # Loaded blocks stay out of the prefix cache for the step that loads them...
    pool = scheduler.kv_cache_manager.block_pool
    assert pool.cached_block_hash_to_block == {}
    runner.step(scheduler)
    # ...and enter it at the request's next allocation, once the load is known good.
    assert sorted(b.block_id for b in pool.cached_block_hash_to_block.values()) == ([1, 2] if caching else [])
    rest = run(scheduler, runner, [])
    assert tokens(rest["c"]) == [1012]
    counters = scheduler.kv_transfer.counters
    assert counters.kv_connector_hit_tokens_total == 8
    assert counters.kv_connector_queried_tokens_total == 8
    assert counters.kv_connector_load_bytes_total == 200
    assert counters.kv_connector_load_steps_total == 1


def test_failed_block_is_recomputed_from_there_and_never_retried(request_factory: Any) -> None:
    store = produced_store(request_factory, PROMPT)
    second_hash = sorted(store.blocks, key=lambda h: len(store.blocks[h][-1]))[1]
    store.failing_hashes.add(second_hash)
    scheduler, connector = make("kv_consumer", store)
    runner = TransferRunner(store)
    scheduler.add_request(request_factory("c", PROMPT, max_tokens=2))
    output, outputs = runner.step(scheduler)
    assert output.num_scheduled_tokens == {"c": 2} and outputs == []  # the sample was dropped
    request = scheduler.requests["c"]
    assert (request.num_computed_tokens, request.num_cached_tokens, list(scheduler.waiting)) == (0, None, [request])
    output, outputs = runner.step(scheduler)
    # Back with only the block before the failed one loaded; the worker drops its old state.
    assert output.preempted_request_ids == {"c"}
    [new] = output.scheduled_new_requests
    assert new.num_computed_tokens == 4 and output.num_scheduled_tokens == {"c": 6}
    assert connector.allocated[-1] == ("c", [new.block_ids[0]], 4)
    assert [(o.new_token_ids, o.num_cached_tokens) for o in outputs] == [([1010], 4)]
    rest = run(scheduler, runner, [])
    assert tokens(rest["c"]) == [1011]
    counters = scheduler.kv_transfer.counters
    assert (counters.kv_connector_failed_blocks_total, counters.kv_connector_recomputed_requests_total) == (1, 1)
    assert counters.kv_connector_hit_tokens_total == 8 + 4
    assert scheduler.kv_cache_manager.usage == 0.0


def test_a_first_block_that_always_fails_ends_in_a_full_recompute(request_factory: Any) -> None:
    store = produced_store(request_factory, PROMPT)
    store.failing_hashes.update(store.blocks)
    scheduler, _ = make("kv_consumer", store)
    outputs = run(scheduler, TransferRunner(store), [request_factory("c", PROMPT, max_tokens=2)])
    assert tokens(outputs["c"]) == [1010, 1011]
    assert outputs["c"][0].num_cached_tokens == 0
    assert scheduler.kv_transfer.counters.kv_connector_failed_blocks_total == 2


def test_only_the_failing_request_is_recomputed(request_factory: Any) -> None:
    other = [40 + i for i in range(9)]
    store = produced_store(request_factory, PROMPT)
    store.blocks.update(produced_store(request_factory, other).blocks)
    store.failing_hashes.add(next(h for h, slots in store.blocks.items() if slots[-1] == tuple(PROMPT[:4])))
    scheduler, _ = make("kv_consumer", store)
    runner = TransferRunner(store)
    requests = [request_factory("c", PROMPT, max_tokens=2), request_factory("d", other, max_tokens=2)]
    for request in requests:
        scheduler.add_request(request)
    _, outputs = runner.step(scheduler)
    assert [(o.request_id, o.new_token_ids, o.num_cached_tokens) for o in outputs] == [("d", [1009], 8)]
    rest = run(scheduler, runner, [])
    assert tokens(rest["c"]) == [1010, 1011] and tokens(rest["d"]) == [1010]


def test_offers_are_cut_to_whole_blocks_before_the_last_token(request_factory: Any) -> None:
    store = produced_store(request_factory, PROMPT)
    scheduler, _ = make("kv_consumer", store, offer_override=11)
    request = request_factory("c", PROMPT, max_tokens=1)
    assert scheduler.kv_transfer.num_external_tokens(request, 0) == 8
    assert scheduler.kv_transfer.num_external_tokens(request, 4) == 4
    assert scheduler.kv_transfer.num_external_tokens(request, 8) == 0
    logprobs = request_factory("l", PROMPT, max_tokens=1, prompt_logprobs=1)
    assert scheduler.kv_transfer.num_external_tokens(logprobs, 0) == 0


def test_a_lookup_that_raises_computes_the_request(request_factory: Any) -> None:
    store = produced_store(request_factory, PROMPT)
    scheduler, _ = make("kv_consumer", store, lookup_raises=True)
    outputs = run(scheduler, TransferRunner(store), [request_factory("c", PROMPT, max_tokens=2)])
    assert tokens(outputs["c"]) == [1010, 1011] and outputs["c"][0].num_cached_tokens == 0
    assert scheduler.kv_transfer.counters.kv_connector_hit_tokens_total == 0


def test_abort_mid_prefill_offers_the_computed_blocks(request_factory: Any) -> None:
    store = Store()
    manager = KVCacheManager(16, BLOCK_SIZE, True, hash_extra_keys=b"test-model")
    connector = DictConnector(role="kv_both", extra_config={"store": store})
    scheduler = Scheduler(manager, max_num_seqs=8, max_num_batched_tokens=6, max_model_len=64,
                          kv_transfer=KVTransferScheduler(connector, manager, block_bytes=100))
    runner = TransferRunner(store)
    scheduler.add_request(request_factory("a", PROMPT + [15, 16, 17], max_tokens=4))
    runner.step(scheduler)  # 6 of 13 prompt tokens: one full block
    scheduler.abort_requests(["a"])
    assert connector.finished == [("a", 1, [1, 2])]
    assert scheduler.has_pending_kv_transfers()
    runner.step(scheduler)
    assert not scheduler.has_pending_kv_transfers() and manager.usage == 0.0
    assert [slots[-1] for slots in store.blocks.values()] == [tuple(PROMPT[:4])]


def test_without_a_connector_the_output_carries_no_metadata(
    request_factory: Any, scheduler_factory: Any, runner_factory: Any
) -> None:
    scheduler = scheduler_factory()
    scheduler.add_request(request_factory("a", PROMPT, max_tokens=1))
    output, _ = runner_factory(BLOCK_SIZE).step(scheduler)
    assert scheduler.kv_transfer is None and output.kv_connector_metadata is None
    assert not scheduler.has_pending_kv_transfers()
