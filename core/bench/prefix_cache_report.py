"""The prefix-8k result as BENCHMARKS.md's JSON record, and its printed table.

- `value`: mean time to first token with the document loaded from the CPU tier (ms).
- `baseline`: the same questions recomputed (no cache), same engine, same call; `ratio` is
  value / baseline as everywhere, and `recompute_over_cpu_tier` the speed-up (target >= 5x).
- `limit`: the fastest a CPU-tier hit could be here: the device-hit time to first token plus
  one pinned host-to-device copy of the document's KV bytes at the rate measured in the same
  process. For a time, `fraction_of_limit` is limit / value (1.0 = at the limit). None on the
  CPU, where there is no host-to-device copy.
"""

from __future__ import annotations

from typing import Any

from tenon.bench.host_copy import NO_CUDA_NOTE, HostCopyRates
from tenon.bench.prefix_cache import STATES, PrefixResult, StateResult
from tenon.bench.report import result_record

TARGET_SPEEDUP = 5.0  # the goal for recompute / CPU tier on a GPU


def state_summary(outcome: StateResult) -> dict[str, Any]:
    ttfts_ms = [seconds * 1000 for seconds in outcome.ttfts_s]
    return {
        "mean_ttft_ms": round(outcome.mean_ttft_s * 1000, 3),
        "median_ttft_ms": round(outcome.median_ttft_s * 1000, 3),
        "min_ttft_ms": round(min(ttfts_ms), 3),
        "max_ttft_ms": round(max(ttfts_ms), 3),
        "ttfts_ms": [round(value, 3) for value in ttfts_ms],
        "num_cached_tokens_min": min(outcome.num_cached_tokens),
        "num_cached_tokens_max": max(outcome.num_cached_tokens),
        "cpu_tier_hit_blocks": int(outcome.tier_delta("cpu", "num_hit_blocks")),
        "kv_connector_hit_tokens": int(outcome.stats_delta("kv_connector_hit_tokens_total")),
    }


def cpu_tier_load(result: PrefixResult) -> dict[str, Any]:
    """What the CPU tier's loads achieved in the cpu_tier state, from its own counters."""
    outcome = result.states["cpu_tier"]
    loaded_bytes = int(outcome.tier_delta("cpu", "loaded_bytes"))
    load_s = outcome.tier_delta("cpu", "load_time_s")
    wait_s = outcome.stats_delta("kv_connector_load_seconds_total")
    return {
        "loaded_bytes": loaded_bytes,
        "loaded_bytes_per_question": loaded_bytes // result.settings.num_questions,
        "num_loads": int(outcome.tier_delta("cpu", "num_loads")),
        "load_s": load_s,
        "bytes_per_s": loaded_bytes / load_s if load_s > 0 else None,
        # the steps' whole wait for their loads (the connector's start_load included)
        "engine_load_wait_s": wait_s,
        "engine_bytes_per_s": loaded_bytes / wait_s if wait_s > 0 else None,
    }


def prefix_record(result: PrefixResult, host_copy: HostCopyRates | None, *, model: str,
                  workload: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    summaries = {state: state_summary(result.states[state]) for state in STATES}
    cpu_ms = summaries["cpu_tier"]["mean_ttft_ms"]
    recompute_ms = summaries["recompute"]["mean_ttft_ms"]
    load = cpu_tier_load(result)
    limit = None
    if host_copy is not None:
        copy_ms = load["loaded_bytes_per_question"] / host_copy.whole.rate_per_s * 1000
        limit = {
            "value": round(summaries["device"]["mean_ttft_ms"] + copy_ms, 3),
            "unit": "ms",
            "how": "device-hit mean TTFT + the document's KV bytes over one pinned host-to-device "
                   "copy at the rate measured in this process",
        }
    settings = result.settings
    record = result_record(
        workload=workload, model=model, value=cpu_ms,
        unit=f"ms mean TTFT, {settings.prefix_len}-token prefix from the CPU tier",
        baseline={"name": "recompute (no cache), same engine and call", "value": recompute_ms,
                  "ratio": round(cpu_ms / recompute_ms, 4)},
        limit=None,
        extra={
            "settings": {"prefix_len": settings.prefix_len, "question_len": settings.question_len,
                         "num_questions": settings.num_questions, "output_len": settings.output_len,
                         "block_size": result.block_size, "seed": settings.seed},
            "states": summaries,
            "recompute_over_cpu_tier": round(recompute_ms / cpu_ms, 3),
            "target_recompute_over_cpu_tier": TARGET_SPEEDUP,
            "cpu_tier_load": load,
            "pinned_host_to_device": host_copy.as_dict() if host_copy else {"note": NO_CUDA_NOTE},
            **(extra or {}),
        },
    )
    record["limit"] = limit
    # A time: the limit over the value, so 1.0 means the load ran at the copy's rate.
    record["fraction_of_limit"] = round(limit["value"] / cpu_ms, 4) if limit else None
    return record


def summary_lines(record: dict[str, Any]) -> list[str]:
    settings = record["settings"]
    lines = [
        f"prefix {settings['prefix_len']} tokens, {settings['num_questions']} questions of "
        f"{settings['question_len']} tokens, one at a time ({record['card']})",
        f"{'state':<10} {'mean TTFT ms':>13} {'p50 ms':>10} {'prefix hit tokens':>18}",
    ]
    for state in STATES:
        summary = record["states"][state]
        hit = f"{summary['num_cached_tokens_min']}-{summary['num_cached_tokens_max']}"
        lines.append(f"{state:<10} {summary['mean_ttft_ms']:>13.2f} "
                     f"{summary['median_ttft_ms']:>10.2f} {hit:>18}")
    lines.append(f"recompute / CPU tier: {record['recompute_over_cpu_tier']:.2f}x "
                 f"(target >= {record['target_recompute_over_cpu_tier']:.0f}x on a GPU)")
    load = record["cpu_tier_load"]
    rate = load["bytes_per_s"]
    lines.append(f"CPU tier loads: {load['loaded_bytes_per_question'] / 2**20:.1f} MiB per question, "
                 f"{'-' if rate is None else f'{rate / 1e9:.2f} GB/s'} (tier's own timing)")
    copy = record["pinned_host_to_device"]
    if "one_copy_bytes_per_s" in copy:
        lines.append(f"pinned host-to-device copy, same bytes: {copy['one_copy_bytes_per_s'] / 1e9:.2f} "
                     f"GB/s as one copy, {copy['block_copies_bytes_per_s'] / 1e9:.2f} GB/s block by block")
        lines.append(f"limit {record['limit']['value']:.2f} ms: fraction of limit "
                     f"{record['fraction_of_limit']:.3f}")
    else:
        lines.append(copy["note"])
    return lines
