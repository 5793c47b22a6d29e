"""`tenon bench prefix` end to end on the CPU: a short document, a few questions, three states
with their checks, and the JSON record; the checks refuse a CPU tier too small to serve."""

from __future__ import annotations

import importlib.metadata
import json
import math
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import tenon.startup.engine_builder as engine_builder
from tenon.bench.host_copy import measure_pinned_host_to_device
from tenon.bench.prefix_cache import PrefixBench, PrefixSettings
from tenon.cli.main import main
from tenon.frontend.llm import LLM
from tenon.plugin_host import StaticEntryPoint, load_plugins
from tenon.spec import ENTRY_POINT_GROUP
from tests.helpers.torch_threads import one_torch_thread  # noqa: F401 (fixture)

BLOCK_SIZE = 16
PREFIX_LEN = 100  # 6 full blocks (96 tokens) and a partial one
NUM_QUESTIONS = 3
BLOCK_BYTES = 2 * 2 * BLOCK_SIZE * 2 * 16 * 4  # [layers, K/V, tokens, KV heads, head dim], fp32


@pytest.fixture(autouse=True)
def kv_tiers_plugin() -> Iterator[None]:
    """Engines load the kv_tiers plugin whether or not its entry point is installed yet."""
    from tenon.plugins.kv_tiers import registration

    value = "tenon.plugins.kv_tiers.registration"

    def load_with_kv_tiers(**options: Any) -> Any:
        installed = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
        if not any(getattr(ep, "value", None) == value for ep in installed):
            installed.append(StaticEntryPoint(name="kv-tiers", loader=lambda: registration,
                                              distribution="tenon", value=value))
        return load_plugins(entry_points=installed, **options)

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(engine_builder, "load_plugins", load_with_kv_tiers)
        yield




def engine_flags(model_dir: Path, offloading_gib: float) -> list[str]:
    return ["--model", str(model_dir), "--load-format", "dummy", "--dtype", "float32",
            "--max-model-len", "256", "--block-size", str(BLOCK_SIZE),
            "--kv-offloading-size", repr(offloading_gib)]


def test_cli_runs_the_three_states_and_writes_the_record(
    tiny_dummy_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "prefix.json"
    status = main(["bench", "prefix", *engine_flags(tiny_dummy_model_dir, 0.01),
                   "--prefix-len", str(PREFIX_LEN), "--question-len", "8",
                   "--num-questions", str(NUM_QUESTIONS), "--output-json", str(output)])
    assert status == 0
    record = json.loads(output.read_text())
    num_blocks = PREFIX_LEN // BLOCK_SIZE
    assert (record["workload"], record["card"], record["limit"], record["fraction_of_limit"]) == (
        "prefix-8k", "cpu", None, None)
    states = record["states"]
    assert [(states[s]["num_cached_tokens_min"], states[s]["num_cached_tokens_max"],
             states[s]["cpu_tier_hit_blocks"], states[s]["kv_connector_hit_tokens"])
            for s in ("device", "cpu_tier", "recompute")] == [
        (96, 96, 0, 0), (96, 96, NUM_QUESTIONS * num_blocks, NUM_QUESTIONS * 96), (0, 0, 0, 0)]
    for summary in states.values():
        assert len(summary["ttfts_ms"]) == NUM_QUESTIONS
        assert summary["mean_ttft_ms"] == pytest.approx(statistics.fmean(summary["ttfts_ms"]), abs=2e-3)
        assert summary["median_ttft_ms"] == pytest.approx(statistics.median(summary["ttfts_ms"]), abs=2e-3)
    cpu_ms, recompute_ms = states["cpu_tier"]["mean_ttft_ms"], states["recompute"]["mean_ttft_ms"]
    assert record["value"] == pytest.approx(cpu_ms, abs=1e-3)
    assert record["baseline"]["value"] == recompute_ms
    assert record["baseline"]["ratio"] == pytest.approx(cpu_ms / recompute_ms, abs=1e-4)
    assert record["recompute_over_cpu_tier"] == pytest.approx(recompute_ms / cpu_ms, abs=1e-3)
    load = record["cpu_tier_load"]
    assert (load["loaded_bytes"], load["loaded_bytes_per_question"], load["num_loads"]) == (
        NUM_QUESTIONS * num_blocks * BLOCK_BYTES, num_blocks * BLOCK_BYTES, NUM_QUESTIONS)
    assert load["bytes_per_s"] == pytest.approx(load["loaded_bytes"] / load["load_s"])
    assert record["pinned_host_to_device"] == {
        "note": "no CUDA device: the pinned host-to-device copy was not measured"}
    assert record["settings"] == {"prefix_len": PREFIX_LEN, "question_len": 8,
                                  "num_questions": NUM_QUESTIONS, "output_len": 2,
                                  "block_size": BLOCK_SIZE, "seed": 0}
    printed = capsys.readouterr().out
    assert "recompute / CPU tier:" in printed and "cpu_tier" in printed


def test_a_cpu_tier_too_small_for_the_document_is_caught(tiny_dummy_model_dir: Path) -> None:
    # Room for 2 blocks: LRU keeps the document's last blocks, so no leading block is found.
    llm = LLM(str(tiny_dummy_model_dir), load_format="dummy", dtype="float32", max_model_len=256,
              block_size=BLOCK_SIZE, kv_offloading_size=2.5 * BLOCK_BYTES / 2**30, log_startup=False)
    try:
        bench = PrefixBench(llm, PrefixSettings(prefix_len=PREFIX_LEN, question_len=8, num_questions=2))
        with pytest.raises(RuntimeError, match="cpu_tier: prefix hits of 0 to 0 tokens, expected at least 96"):
            bench.run()
    finally:
        llm.shutdown()


def test_an_engine_without_a_cpu_tier_or_too_short_is_refused(tiny_dummy_model_dir: Path) -> None:
    llm = LLM(str(tiny_dummy_model_dir), load_format="dummy", dtype="float32", max_model_len=64,
              log_startup=False)
    try:
        with pytest.raises(ValueError, match="pass --kv-offloading-size"):
            PrefixBench(llm, PrefixSettings(prefix_len=32, question_len=8, num_questions=1))
    finally:
        llm.shutdown()
    llm = LLM(str(tiny_dummy_model_dir), load_format="dummy", dtype="float32", max_model_len=64,
              kv_offloading_size=0.01, log_startup=False)
    try:
        with pytest.raises(ValueError, match="a question needs 106 tokens .* --max-model-len is 64"):
            PrefixBench(llm, PrefixSettings(prefix_len=PREFIX_LEN, question_len=4, num_questions=1))
    finally:
        llm.shutdown()
    with pytest.raises(ValueError, match="--num-questions must be at least 1"):
        PrefixSettings(num_questions=0)


def test_pinned_copy_needs_cuda() -> None:
    with pytest.raises(ValueError, match="needs a CUDA device"):
        measure_pinned_host_to_device(1 << 20, 1 << 16, torch.device("cpu"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_pinned_copy_rates_on_the_gpu() -> None:
    rates = measure_pinned_host_to_device(64 << 20, 2 << 20, torch.device("cuda"), num_repeats=3)
    assert rates.num_bytes == 64 << 20 and len(rates.whole.samples_s) == 3
    # A PCIe or NVLink-C2C host link: between 1 GB/s and 1 TB/s, whatever the card.
    for rate in (rates.whole.rate_per_s, rates.chunked.rate_per_s):
        assert 1e9 < rate < 1e12 and math.isfinite(rate)
