"""The offline limit model: exact floors on hand-computed cases, the schedule against the
engine's scheduler, and sanity ranges for llama-3.1-8b."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenon.bench.offline_limit import (
    ModelCosts,
    OfflineWorkload,
    ScheduledChunk,
    offline_limit,
    schedule_steps,
    step_cost,
)
from tenon.bench.weight_bytes import decode_bytes_per_step

LLAMA_CONFIG_DIR = Path(__file__).resolve().parents[3] / "benchmarks" / "configs" / "llama-3.1-8b"
# Small round numbers, so every step's cost is computed by hand below.
TOY_COSTS = ModelCosts(streamed_weight_bytes=1000, embedding_row_bytes=10, layer_params=100,
                       head_params=50, kv_bytes_per_token=4, attention_flops_per_key=8)


def workload(**fields: int | None) -> OfflineWorkload:
    defaults: dict[str, int | None] = {"num_prompts": 1, "input_len": 2, "output_len": 2,
                                       "max_num_seqs": 1, "max_num_batched_tokens": 8}
    return OfflineWorkload(**{**defaults, **fields})  # type: ignore[arg-type]


def chunks_of(steps: list[tuple[ScheduledChunk, ...]]) -> list[list[tuple[int, int, int, bool]]]:
    return [[(c.request_index, c.num_computed_tokens, c.num_new_tokens, c.samples) for c in step]
            for step in steps]


def test_one_request_floor_by_hand() -> None:
    # Step 1 prefills 2 tokens and samples; step 2 decodes at position 2 and samples the last.
    #   step 1: bytes 1000 + 2*10 + (2 read + 2 written)*4 = 1036; FLOPs 2*100*2 + 2*50 + 8*(1+2) = 524
    #   step 2: bytes 1000 + 10 + (3 + 1)*4 = 1026;               FLOPs 2*100 + 2*50 + 8*3 = 324
    limit = offline_limit(TOY_COSTS, workload(), copy_bandwidth_bytes_per_s=1000.0, matmul_flops_per_s=100.0)
    assert chunks_of(list(schedule_steps(workload()))) == [[(0, 0, 2, True)], [(0, 2, 1, True)]]
    assert (limit.total_bytes, limit.total_flops, limit.num_steps) == (2062, 848, 2)
    assert limit.floor_s == pytest.approx(5.24 + 3.24)
    assert limit.num_memory_bound_steps == 0
    assert limit.output_tokens_per_s == pytest.approx(2 / 8.48)
    assert limit.total_tokens_per_s == pytest.approx(4 / 8.48)


def test_serial_floor_adds_attention_to_the_matmuls_by_hand() -> None:
    # The same two steps, matmuls then attention, each at its own bound (1000 B/s, 100 FLOP/s):
    #   step 1: max((1000 + 20) / 1000, (400 + 100) / 100) + max(16 / 1000, 24 / 100) = 5.0 + 0.24
    #   step 2: max((1000 + 10) / 1000, (200 + 100) / 100) + max(16 / 1000, 24 / 100) = 3.0 + 0.24
    limit = offline_limit(TOY_COSTS, workload(), copy_bandwidth_bytes_per_s=1000.0, matmul_flops_per_s=100.0)
    assert limit.serial_floor_s == pytest.approx(5.24 + 3.24)  # compute-bound throughout: no overlap lost
    # Memory-bound attention beside compute-bound matmuls: the limit overlaps them, serial adds them.
    costs = ModelCosts(streamed_weight_bytes=0, embedding_row_bytes=0, layer_params=100, head_params=0,
                       kv_bytes_per_token=250, attention_flops_per_key=0)
    mixed = offline_limit(costs, workload(output_len=1), copy_bandwidth_bytes_per_s=1000.0,
                          matmul_flops_per_s=100.0)
    # One step: 2 prompt tokens: FLOPs 2*100*2 = 400 (4 s); KV (2 read + 2 written) * 250 = 1000 B (1 s).
    assert (mixed.floor_s, mixed.serial_floor_s) == (pytest.approx(4.0), pytest.approx(5.0))
    serial = mixed.as_limit()["serial"]
    assert (serial["floor_s"], serial["value"]) == (5.0, round(1 / 5.0, 2))  # one output token


def test_memory_bound_steps_take_bytes_over_bandwidth() -> None:
    # The same steps with a fast matmul: 1.036 s + 1.026 s of memory time.
    limit = offline_limit(TOY_COSTS, workload(), copy_bandwidth_bytes_per_s=1000.0, matmul_flops_per_s=1e6)
    assert limit.floor_s == pytest.approx(2.062)
    assert limit.num_memory_bound_steps == 2
    record = limit.as_limit()
    assert record["value"] == round(2 / 2.062, 2)
    assert (record["num_steps"], record["total_bytes"], record["kv_capacity_tokens"]) == (2, 2062, None)


def test_chunked_prefill_under_a_small_budget() -> None:
    steps = list(schedule_steps(workload(num_prompts=2, input_len=4, max_num_seqs=2, max_num_batched_tokens=3)))
    assert chunks_of(steps) == [
        [(0, 0, 3, False)],  # the budget cuts request 0's prompt
        [(0, 3, 1, True), (1, 0, 2, False)],  # request 0 finishes its prompt, request 1 starts
        [(0, 4, 1, True), (1, 2, 2, True)],  # request 0's last token; request 1's prompt done
        [(1, 4, 1, True)],
    ]
    # Step 2: 3 tokens, 1 sampled; KV read (3+1) + (0+2), written 3; keys 1*3 + 1 and 0 + 3.
    cost = step_cost(TOY_COSTS, steps[1])
    assert (cost.num_bytes, cost.num_flops) == (1000 + 30 + (6 + 3) * 4, 2 * 100 * 3 + 2 * 50 + 8 * 7)


def test_max_num_seqs_holds_requests_back() -> None:
    steps = list(schedule_steps(workload(num_prompts=3, input_len=1, output_len=1, max_num_seqs=2)))
    assert chunks_of(steps) == [[(0, 0, 1, True), (1, 0, 1, True)], [(2, 0, 1, True)]]


def test_kv_capacity_admits_what_fits_at_its_final_length() -> None:
    # Each request ends holding 3 + 2 - 1 = 4 tokens of KV: one at a time in a cache of 7.
    steps = list(schedule_steps(workload(num_prompts=2, input_len=3, max_num_seqs=2, kv_capacity_tokens=7)))
    assert chunks_of(steps) == [[(0, 0, 3, True)], [(0, 3, 1, True)], [(1, 0, 3, True)], [(1, 3, 1, True)]]
    with pytest.raises(ValueError, match="needs KV for 4 tokens"):
        workload(input_len=3, kv_capacity_tokens=3)


def _engine_steps(shape: OfflineWorkload, *, num_blocks: int, block_size: int,
                  ignore_eos: bool) -> list[list[tuple[int, int, int, bool]]]:
    from tenon.engine.kv_cache_manager import KVCacheManager
    from tenon.engine.request import Request
    from tenon.engine.scheduler import Scheduler
    from tenon.engine.scheduler_output import RunnerOutput
    from tenon.sampling.params import SamplingParams

    scheduler = Scheduler(KVCacheManager(num_blocks, block_size, enable_caching=False),
                          max_num_seqs=shape.max_num_seqs, max_num_batched_tokens=shape.max_num_batched_tokens,
                          max_model_len=32)
    for index in range(shape.num_prompts):
        params = SamplingParams(max_tokens=shape.output_len, ignore_eos=ignore_eos)
        scheduler.add_request(Request(str(index), [100 * index + t for t in range(shape.input_len)], params,
                                      arrival_time_s=0.0))
    engine_steps = []
    while scheduler.has_unfinished_requests():
        output = scheduler.schedule()
        step, request_ids, sampled = [], [], []
        for request_id, num_new in output.num_scheduled_tokens.items():
            request = scheduler.requests[request_id]
            samples = request.num_computed_tokens + num_new == request.num_tokens
            step.append((int(request_id), request.num_computed_tokens, num_new, samples))
            request_ids.append(request_id)
            sampled.append([7] if samples else [])
        engine_steps.append(step)
        scheduler.update_from_output(output, RunnerOutput(request_ids=request_ids, sampled_token_ids=sampled))
    assert scheduler.num_preemptions_total == 0
    return engine_steps


def test_schedule_matches_the_engine_scheduler() -> None:
    shape = workload(num_prompts=6, input_len=7, output_len=3, max_num_seqs=3, max_num_batched_tokens=8)
    assert chunks_of(list(schedule_steps(shape))) == _engine_steps(shape, num_blocks=64, block_size=4,
                                                                   ignore_eos=True)


def test_schedule_matches_the_engine_scheduler_when_the_cache_limits_admission() -> None:
    # Each request ends holding 5 + 4 - 1 = 8 KV tokens; a 20-token cache holds two at a time.
    # The engine reserves an ignore_eos request's whole length as the model does (one-token
    # blocks, so its free blocks count tokens exactly; block 0 is the null block).
    shape = workload(num_prompts=5, input_len=5, output_len=4, max_num_seqs=4, max_num_batched_tokens=16,
                     kv_capacity_tokens=20)
    steps = chunks_of(list(schedule_steps(shape)))
    assert max(len(step) for step in steps) == 2
    assert steps == _engine_steps(shape, num_blocks=21, block_size=1, ignore_eos=True)


def test_llama_costs_and_sanity_ranges() -> None:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(LLAMA_CONFIG_DIR)
    costs = ModelCosts.from_config(config, 2)
    # A batch-1 decode step streams the weights and reads one embedding row: 15.01 GB.
    assert costs.streamed_weight_bytes + costs.embedding_row_bytes == decode_bytes_per_step(config, 2)
    assert costs.kv_bytes_per_token == 32 * 2 * 8 * 128 * 2
    assert costs.attention_flops_per_key == 32 * 4 * 32 * 128
    assert costs.head_params == 128256 * 4096
    # H100-like rates (3.0 TB/s copy, 750 TFLOP/s bf16), max_num_seqs 256, 8192-token steps.
    rates = {"copy_bandwidth_bytes_per_s": 3.0e12, "matmul_flops_per_s": 7.5e14}
    short = offline_limit(costs, OfflineWorkload(num_prompts=1000, input_len=128, output_len=128,
                                                 max_num_seqs=256, max_num_batched_tokens=8192), **rates)
    # Decode at batch 256 streams 15 GB of weights plus a little KV per step: about 5.5 ms.
    assert 15_000 < short.output_tokens_per_s < 45_000
    one_stream = offline_limit(costs, OfflineWorkload(num_prompts=1, input_len=128, output_len=256,
                                                      max_num_seqs=256, max_num_batched_tokens=8192), **rates)
    # One stream: about 200 tokens/s (the decode-1 limit), a little less for the prefill.
    assert 190 < one_stream.output_tokens_per_s < 200
    # Even its 128-token prefill (1.9 TFLOP, 2.6 ms) is quicker than streaming the weights (5 ms).
    assert one_stream.num_memory_bound_steps == one_stream.num_steps == 256
    # 8192-token prefill steps (123 TFLOP, 160 ms) are compute-bound.
    assert 0 < short.num_memory_bound_steps < short.num_steps


def test_mixture_of_experts_is_refused() -> None:
    from transformers import Qwen3MoeConfig

    config = Qwen3MoeConfig(hidden_size=64, intermediate_size=128, moe_intermediate_size=32, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, num_experts=4, num_experts_per_tok=2,
                            vocab_size=100)
    with pytest.raises(ValueError, match="routes tokens to experts"):
        ModelCosts.from_config(config, 2)
