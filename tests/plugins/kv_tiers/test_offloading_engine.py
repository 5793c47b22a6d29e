"""The OffloadingConnector in the engine: a prefix evicted from a deliberately tiny device cache
comes back from the CPU tier, and from the disk tier after a restart, with the same greedy
output as a cold run and `num_cached_tokens` covering it; a corrupted, truncated or deleted
block file, or a full disk, costs a recomputation (counted), never a wrong token."""

from __future__ import annotations

import errno
import random
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import torch

from tenon import LLM, SamplingParams
from tenon.engine.block_hash import update_block_hashes
from tenon.plugins.kv_tiers import disk_files
from tenon.plugins.kv_tiers.cpu_tier import CPUTier
from tenon.plugins.kv_tiers.disk_tier import DiskTier
from tenon.plugins.kv_tiers.offloading_config import SESSION_KEY, OffloadingSession
from tests.helpers.tiny_model import VOCAB_SIZE

pytestmark = pytest.mark.usefixtures("offloading_plugin")

MAX_TOKENS = 6
GREEDY = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True)
BLOCK_SIZE = 4
_rng = random.Random(11)
PREFIX = [_rng.randrange(1, VOCAB_SIZE) for _ in range(10 * BLOCK_SIZE)]
FIRST = PREFIX + [5, 6, 7]  # 43 tokens: 48 with its output, 12 blocks
AGAIN = PREFIX + [9, 10]  # the prefix with another ending: 10 full prefix blocks to reuse
EVICTOR = [_rng.randrange(1, VOCAB_SIZE) for _ in range(42)]  # 12 blocks: evicts all of FIRST
DEVICE_BLOCKS = 12  # usable device blocks: one request at a time
FAULTY_BLOCK = 3


def generate(llm: LLM, prompt: list[int]) -> Any:
    return llm.generate({"prompt_token_ids": prompt}, GREEDY)[0]


def session(llm: LLM) -> OffloadingSession:
    transfer = llm.engine.config.kv_transfer
    assert transfer is not None and transfer.kv_connector == "OffloadingConnector"
    return transfer.kv_connector_extra_config[SESSION_KEY]


def tiers(llm: LLM) -> dict[str, Any]:
    chain = session(llm).chain
    assert chain is not None
    return {tier.name: tier for tier in chain.tiers}


@contextmanager
def offloading_engine(model_dir: Path, *, cpu_bytes: int | None = None,
                      disk_dir: Path | None = None, block_size: int = BLOCK_SIZE,
                      device_blocks: int = DEVICE_BLOCKS, max_model_len: int = 64) -> Iterator[LLM]:
    extra: dict[str, Any] = {}
    if cpu_bytes is not None:
        extra["cpu_bytes_to_use"] = cpu_bytes
    if disk_dir is not None:
        extra.update(disk_path=str(disk_dir), disk_bytes_to_use=1 << 30)
    llm = LLM(str(model_dir), dtype="float32", log_startup=False, block_size=block_size,
              num_gpu_blocks_override=device_blocks, max_model_len=max_model_len,
              kv_transfer_config={"kv_connector": "OffloadingConnector",
                                  "kv_connector_extra_config": extra})
    try:
        yield llm
    finally:
        session(llm).close()  # finishes queued disk writes
        llm.shutdown()


def cold_outputs(model_dir: Path, prompts: list[list[int]], **engine_args: Any) -> list[list[int]]:
    llm = LLM(str(model_dir), dtype="float32", log_startup=False, enable_prefix_caching=False,
              **engine_args)
    outputs = [generate(llm, prompt).outputs[0].token_ids for prompt in prompts]
    llm.shutdown()
    return outputs


@pytest.fixture(scope="module")
def expected(long_llama_dir: Path) -> dict[str, list[int]]:
    first, again = cold_outputs(long_llama_dir, [FIRST, AGAIN], max_model_len=64)
    return {"first": first, "again": again}


def stats_delta(llm: LLM, before: Any) -> dict[str, float]:
    after = attrs.asdict(llm.engine.client.stats())
    return {key: after[key] - value for key, value in attrs.asdict(before).items()
            if isinstance(value, int | float)}


def test_cpu_tier_serves_a_prefix_evicted_from_the_device(
    long_llama_dir: Path, expected: dict[str, list[int]]
) -> None:
    with offloading_engine(long_llama_dir, cpu_bytes=1 << 20) as llm:
        assert generate(llm, FIRST).outputs[0].token_ids == expected["first"]
        generate(llm, EVICTOR)  # takes every device block: FIRST's blocks are evicted
        before = llm.engine.client.stats()
        output = generate(llm, AGAIN)
        assert output.outputs[0].token_ids == expected["again"]
        assert output.num_cached_tokens == len(PREFIX)
        delta = stats_delta(llm, before)
        assert delta["prefix_cache_hits_total"] == 0  # nothing left on the device
        assert delta["kv_connector_hit_tokens_total"] == len(PREFIX)
        cpu = tiers(llm)["cpu"].stats()
        assert cpu.num_hit_blocks == len(PREFIX) // BLOCK_SIZE
        # FIRST and EVICTOR each computed 12 full blocks (prompt and output) and stored them.
        assert cpu.num_stored_blocks == 24 and cpu.num_load_failures == 0


def test_two_thousand_token_prefix_from_cpu_then_from_disk_after_restart(
    long_llama_dir: Path, tmp_path: Path
) -> None:
    block_size, rng = 16, random.Random(5)
    prefix = [rng.randrange(1, VOCAB_SIZE) for _ in range(2000)]
    first, again = prefix + [5, 6, 7], prefix + [9, 10]
    evictor = [rng.randrange(1, VOCAB_SIZE) for _ in range(2020)]  # needs all 127 blocks
    engine_args = {"block_size": block_size, "max_model_len": 2100}
    [expected_again] = cold_outputs(long_llama_dir, [again], **engine_args)
    options: dict[str, Any] = {"cpu_bytes": 4 << 20, "disk_dir": tmp_path / "kv",
                               "device_blocks": 127, **engine_args}
    with offloading_engine(long_llama_dir, **options) as llm:
        generate(llm, first)
        generate(llm, evictor)
        output = generate(llm, again)
        assert output.outputs[0].token_ids == expected_again
        assert output.num_cached_tokens == 2000
        assert tiers(llm)["cpu"].stats().num_hit_blocks == 125
        assert tiers(llm)["disk"].stats().num_hit_blocks == 0
    with offloading_engine(long_llama_dir, **options) as restarted:  # the CPU tier is empty
        output = generate(restarted, again)
        assert output.outputs[0].token_ids == expected_again
        assert output.num_cached_tokens == 2000
        assert tiers(restarted)["cpu"].stats().num_hit_blocks == 0
        assert tiers(restarted)["disk"].stats().num_hit_blocks == 125


@pytest.fixture(scope="module")
def stored_dir(long_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory,
               offloading_plugin: None) -> tuple[Path, list[bytes]]:
    """A disk tier holding FIRST's blocks, and the hashes of its prefix blocks."""
    directory = tmp_path_factory.mktemp("stored") / "kv"
    with offloading_engine(long_llama_dir, disk_dir=directory) as llm:
        generate(llm, FIRST)
        extra_keys = llm.engine.client.core.scheduler.kv_cache_manager.hash_extra_keys
    hashes: list[bytes] = []
    update_block_hashes(hashes, PREFIX, BLOCK_SIZE, extra_keys)
    return directory, hashes


def test_disk_tier_serves_a_prefix_after_restart(
    long_llama_dir: Path, stored_dir: tuple[Path, list[bytes]], tmp_path: Path,
    expected: dict[str, list[int]],
) -> None:
    directory = tmp_path / "kv"
    shutil.copytree(stored_dir[0], directory)
    with offloading_engine(long_llama_dir, disk_dir=directory) as llm:
        output = generate(llm, AGAIN)
        assert output.outputs[0].token_ids == expected["again"]
        assert output.num_cached_tokens == len(PREFIX)
        disk = tiers(llm)["disk"].stats()
        assert (disk.num_hit_blocks, disk.num_load_failures) == (10, 0)


# fault, when -> (invalid files at start, load failures, blocks loaded, recomputed requests)
FAULTS = {
    ("corrupted", "before_start"): (0, 1, 9 + FAULTY_BLOCK, 1),
    ("corrupted", "while_running"): (0, 1, 9 + FAULTY_BLOCK, 1),
    ("truncated", "before_start"): (1, 0, FAULTY_BLOCK, 0),
    ("truncated", "while_running"): (0, 1, 9 + FAULTY_BLOCK, 1),
    ("deleted", "before_start"): (0, 0, FAULTY_BLOCK, 0),
    ("deleted", "while_running"): (0, 1, 9 + FAULTY_BLOCK, 1),
}


def _damage(path: Path, fault: str) -> None:
    if fault == "corrupted":
        data = bytearray(path.read_bytes())
        data[-7] ^= 0x10  # one bit of one K/V value; header and size stay valid
        path.write_bytes(bytes(data))
    elif fault == "truncated":
        path.write_bytes(path.read_bytes()[:-64])
    else:
        path.unlink()


@pytest.mark.parametrize(("fault", "when"), sorted(FAULTS), ids=["-".join(k) for k in sorted(FAULTS)])
def test_damaged_block_file_is_recomputed_and_counted(
    long_llama_dir: Path, stored_dir: tuple[Path, list[bytes]], tmp_path: Path,
    expected: dict[str, list[int]], fault: str, when: str,
) -> None:
    directory = tmp_path / "kv"
    shutil.copytree(stored_dir[0], directory)
    faulty_hash = stored_dir[1][FAULTY_BLOCK]
    if when == "before_start":
        [path] = directory.glob(f"*/*/{faulty_hash.hex()}.kvblock")
        _damage(path, fault)
    with offloading_engine(long_llama_dir, disk_dir=directory) as llm:
        disk: DiskTier = tiers(llm)["disk"]
        if when == "while_running":
            _damage(disk.block_path(faulty_hash), fault)
        before = llm.engine.client.stats()
        output = generate(llm, AGAIN)
        assert output.outputs[0].token_ids == expected["again"]
        # Only the blocks before the damaged one come from the tier, then the rest is computed.
        assert output.num_cached_tokens == FAULTY_BLOCK * BLOCK_SIZE
        invalid, load_failures, loaded, recomputed = FAULTS[(fault, when)]
        stats = disk.stats()
        assert (stats.num_invalid_files, stats.num_load_failures, stats.num_hit_blocks) == (
            invalid, load_failures, loaded)
        delta = stats_delta(llm, before)
        assert delta["kv_connector_failed_blocks_total"] == load_failures
        assert delta["kv_connector_recomputed_requests_total"] == recomputed
        assert faulty_hash not in disk


def test_full_disk_skips_stores_counts_them_and_stays_correct(
    long_llama_dir: Path, tmp_path: Path, expected: dict[str, list[int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def full_disk(path: Path, parts: Any, *, fsync: bool) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(disk_files, "write_file", full_disk)
    directory = tmp_path / "kv"
    with offloading_engine(long_llama_dir, disk_dir=directory) as llm:
        assert generate(llm, FIRST).outputs[0].token_ids == expected["first"]
        session(llm).flush()
        stats = tiers(llm)["disk"].stats()
        assert (stats.num_store_failures, stats.num_full_skips, stats.num_stored_blocks) == (12, 12, 0)
        generate(llm, EVICTOR)
        output = generate(llm, AGAIN)
        assert output.outputs[0].token_ids == expected["again"]
        assert output.num_cached_tokens == 0
    assert [p for p in directory.rglob("*") if p.is_file()] == []


def test_cpu_tier_is_a_cpu_tier_on_the_cpu(long_llama_dir: Path) -> None:
    with offloading_engine(long_llama_dir, cpu_bytes=1 << 20) as llm:
        [tier] = tiers(llm).values()
        assert isinstance(tier, CPUTier)
        assert not tier._slab.is_pinned()
        assert tier.block_shape == (2, 2, BLOCK_SIZE, 2, 16)  # [layers, K/V, tokens, heads, dim]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cpu_tier_on_cuda_loads_without_blocking_the_host_and_gives_the_same_tokens(
    long_llama_dir: Path, expected: dict[str, list[int]]
) -> None:
    """On a GPU the CPU tier's loads are stream-ordered copies that the host does not wait for;
    the tokens computed from them must still be exactly the cold engine's."""
    with offloading_engine(long_llama_dir, cpu_bytes=1 << 20) as llm:
        assert str(llm.engine.client.core.executor.runner.device).startswith("cuda")
        assert generate(llm, FIRST).outputs[0].token_ids == expected["first"]
        generate(llm, EVICTOR)
        output = generate(llm, AGAIN)
        assert output.outputs[0].token_ids == expected["again"]
        assert output.num_cached_tokens == len(PREFIX)
        cpu = tiers(llm)["cpu"].stats()
        assert cpu.num_hit_blocks == len(PREFIX) // BLOCK_SIZE and cpu.num_loads >= 1
        assert cpu.load_time_s > 0.0
