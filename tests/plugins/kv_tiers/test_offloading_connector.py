"""The OffloadingConnector's two sides against a small KV cache, without an engine: what the
scheduler side offers and asks for, and what the worker side moves and reports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tenon.plugins.kv_tiers.connector_metadata import BlockTransfer, OffloadingStepMetadata
from tenon.plugins.kv_tiers.connector_scheduler import OffloadingConnectorScheduler
from tenon.plugins.kv_tiers.connector_worker import OffloadingConnectorWorker
from tenon.plugins.kv_tiers.offloading_config import (
    SESSION_KEY,
    OffloadingSession,
    OffloadingSettings,
)
from tenon.spec.kv_connector import ConnectorRequest
from tests.plugins.kv_tiers.kv_blocks import block_hash

BLOCK_SIZE = 4
NUM_BLOCKS = 10
# kv_cache: [num_blocks, num_layers, 2, block_size, num_kv_heads, head_size]
CACHE_SHAPE = (NUM_BLOCKS, 2, 2, BLOCK_SIZE, 1, 8)


@pytest.fixture
def sides(tmp_path: Path) -> Iterator[tuple[OffloadingConnectorScheduler, OffloadingConnectorWorker, torch.Tensor]]:
    block_bytes = torch.empty(CACHE_SHAPE[1:]).nbytes
    settings = OffloadingSettings(cpu_bytes=3 * block_bytes, disk_path=str(tmp_path),
                                  disk_bytes=1 << 20, model="m")
    extra = {SESSION_KEY: OffloadingSession(settings)}
    scheduler = OffloadingConnectorScheduler(role="kv_both", extra_config=extra)
    worker = OffloadingConnectorWorker(role="kv_both", extra_config=extra)
    kv_cache = torch.randn(CACHE_SHAPE, generator=torch.Generator().manual_seed(0))
    worker.register_kv_cache(kv_cache, BLOCK_SIZE)
    yield scheduler, worker, kv_cache
    worker.close()


def request(num_tokens: int, request_id: str = "r") -> ConnectorRequest:
    num_blocks = num_tokens // BLOCK_SIZE
    return ConnectorRequest(request_id=request_id, token_ids=tuple(range(num_tokens)),
                            block_hashes=tuple(block_hash(i) for i in range(num_blocks)),
                            block_size=BLOCK_SIZE)


def step(scheduler: OffloadingConnectorScheduler, worker: OffloadingConnectorWorker) -> tuple:
    worker.start_load(scheduler.build_step_metadata())
    for layer_index in range(CACHE_SHAPE[1]):
        worker.wait_for_layer_load(layer_index)
    worker.wait_for_save()
    return (*worker.finished_transfers(), worker.failed_block_ids())


def test_save_at_finish_then_load_into_new_blocks(sides: tuple) -> None:
    scheduler, worker, kv_cache = sides
    finished = request(5 * BLOCK_SIZE)  # 5 full blocks in device blocks 1..5
    assert scheduler.on_request_finished(finished, [1, 2, 3, 4, 5]) is True
    metadata = scheduler.build_step_metadata()
    assert metadata == OffloadingStepMetadata(saves=(BlockTransfer(
        request_id="r", block_hashes=tuple(block_hash(i) for i in range(5)),
        block_ids=(1, 2, 3, 4, 5)),))
    saved = kv_cache[1:6].clone()
    worker.start_load(metadata)
    assert worker.finished_transfers() == ({"r"}, set())
    assert worker.take_stored_bytes() == 5 * kv_cache[0].nbytes
    # A restart: the tiers are rebuilt (queued disk writes finish first); the CPU tier is empty.
    worker.register_kv_cache(kv_cache, BLOCK_SIZE)
    assert scheduler.session.chain is worker.session.chain
    assert [tier.num_blocks for tier in scheduler.session.chain.tiers] == [0, 5]

    # A new request with the same 5 blocks and one more token; 1 block hit on the device.
    again = request(5 * BLOCK_SIZE + 1, "s")
    assert scheduler.num_external_tokens(again, num_computed_tokens=BLOCK_SIZE) == 4 * BLOCK_SIZE
    scheduler.on_allocated(again, [1, 7, 8, 9, 6], 4 * BLOCK_SIZE)
    kv_cache[6:10].zero_()
    assert step(scheduler, worker) == (set(), {"s"}, set())
    assert torch.equal(kv_cache[[7, 8, 9, 6]], saved[1:5])


def test_never_offers_the_block_of_the_last_prompt_token(sides: tuple) -> None:
    scheduler, worker, kv_cache = sides
    scheduler.on_request_finished(request(3 * BLOCK_SIZE), [1, 2, 3])
    step(scheduler, worker)
    assert scheduler.num_external_tokens(request(3 * BLOCK_SIZE), 0) == 2 * BLOCK_SIZE
    assert scheduler.num_external_tokens(request(3 * BLOCK_SIZE + 1), 0) == 3 * BLOCK_SIZE
    assert scheduler.num_external_tokens(request(3 * BLOCK_SIZE + 1), 3 * BLOCK_SIZE) == 0


def test_saves_only_blocks_no_tier_holds(sides: tuple) -> None:
    scheduler, worker, _ = sides
    scheduler.on_request_finished(request(2 * BLOCK_SIZE), [1, 2])
    step(scheduler, worker)
    assert scheduler.on_request_finished(request(2 * BLOCK_SIZE, "again"), [3, 4]) is False
    assert scheduler.on_request_finished(request(3 * BLOCK_SIZE, "longer"), [3, 4, 5]) is True
    [save] = scheduler.build_step_metadata().saves
    assert (save.block_hashes, save.block_ids) == ((block_hash(2),), (5,))


def test_failed_load_reports_its_device_block(sides: tuple) -> None:
    scheduler, worker, kv_cache = sides
    scheduler.on_request_finished(request(4 * BLOCK_SIZE), [1, 2, 3, 4])
    step(scheduler, worker)
    worker.session.flush()
    chain = worker.session.chain
    assert chain is not None
    cpu, disk = chain.tiers
    assert [block_hash(i) in cpu for i in range(4)] == [False, True, True, True]
    disk.block_path(block_hash(0)).unlink()  # block 0 is only on disk
    again = request(4 * BLOCK_SIZE + 1, "s")
    assert scheduler.num_external_tokens(again, 0) == 4 * BLOCK_SIZE
    scheduler.on_allocated(again, [6, 7, 8, 9], 4 * BLOCK_SIZE)
    kept = kv_cache[6].clone()
    assert step(scheduler, worker) == (set(), {"s"}, {6})
    assert torch.equal(kv_cache[6], kept)


@pytest.mark.parametrize(("role", "loads", "saves"), [("kv_producer", False, True),
                                                       ("kv_consumer", True, False)])
def test_roles(tmp_path: Path, role: str, loads: bool, saves: bool) -> None:
    settings = OffloadingSettings(cpu_bytes=1 << 20, disk_path=None, disk_bytes=None, model="m")
    extra = {SESSION_KEY: OffloadingSession(settings)}
    scheduler = OffloadingConnectorScheduler(role=role, extra_config=extra)
    worker = OffloadingConnectorWorker(role=role, extra_config=extra)
    worker.register_kv_cache(torch.zeros(CACHE_SHAPE), BLOCK_SIZE)
    chain = scheduler.session.chain
    assert chain is not None
    chain.store([(block_hash(0), torch.ones(CACHE_SHAPE[1:]))])
    assert (scheduler.num_external_tokens(request(2 * BLOCK_SIZE), 0) > 0) is loads
    assert scheduler.on_request_finished(request(2 * BLOCK_SIZE), [1, 2]) is saves


def test_sides_refuse_to_start_without_a_session() -> None:
    with pytest.raises(ValueError, match="without its session"):
        OffloadingConnectorScheduler(role="kv_both", extra_config={"cpu_bytes_to_use": 1 << 20})
    with pytest.raises(ValueError, match="without its session"):
        OffloadingConnectorWorker(role="kv_both", extra_config={})
