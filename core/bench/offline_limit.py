"""The offline throughput floor (BENCHMARKS.md "The physical limit"): replay the engine's
scheduling of an offline workload step by step, and charge each step the larger of its memory
time and its matmul time:

    step_s = max(step_bytes / copy_bandwidth, step_flops / matmul_rate)
    floor_s = sum of step_s;  limit = output tokens / floor_s

A step's bytes: every weight the step streams (all of them but the embedding table, of which
one row per token is read; a tied table is read whole as the output head), the KV cache of
every scheduled sequence read once (its cached tokens and this step's), and this step's new K/V
written once. Activations are not counted. A step's FLOPs: 2 x layer parameters x tokens,
2 x head parameters x rows sampled (the engine computes logits for the last row of a request
only), and attention: a query at position p attends to p + 1 keys, 4 x heads x head size FLOPs
per (query, key) pair per layer (scores and the weighted sum of values).

A second floor, `serial_floor_s`, charges each step its matmuls and its attention one after
the other, each at its own bound, as an engine that runs them in sequence on one stream must:

    serial_step_s = max(weight_bytes / bandwidth, linear_flops / matmul_rate)
                    + max(kv_bytes / bandwidth, attention_flops / matmul_rate)

The limit model assumes the KV reads of attention overlap the matmuls' arithmetic; where a step
needs both in similar amounts (a batch of a few hundred long sequences), the serial floor is the
nearer target for a one-stream engine, and our time over it says how much of the gap is kernel
efficiency rather than the missing overlap.

Scheduling follows `tenon.engine.scheduler` (vLLM v1's FCFS with chunked prefill): running
requests first, in admission order, each taking what is left of its prompt or one decode token
within the step's token budget; then waiting requests are admitted while budget and sequence
slots remain. A request samples a token on the step that computes its last known token, and is
done after `output_len` tokens. There is no preemption: with `kv_capacity_tokens` a request is
admitted only when every admitted request's whole final length still fits, which is how a
perfect scheduler would use a cache that small.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

import attrs

from tenon.bench.weight_bytes import weight_counts


@attrs.frozen(kw_only=True)
class ModelCosts:
    """What one step costs per token, per sampled row and per attended key, for one model."""

    streamed_weight_bytes: int  # read once per step whatever the token count
    embedding_row_bytes: int  # read once per token (the lookup)
    layer_params: int  # 2 FLOPs each per token
    head_params: int  # 2 FLOPs each per sampled row
    kv_bytes_per_token: int  # K and V of one token, every layer
    attention_flops_per_key: int  # per (query, key) pair, every layer

    @classmethod
    def from_config(cls, config: Any, dtype_bytes: int) -> ModelCosts:
        """Costs of a dense decoder from its HF config; ValueError for a mixture of experts,
        whose streamed bytes depend on routing this model does not assume."""
        counts = weight_counts(config)
        if counts.active_layer_params != counts.layer_params:
            raise ValueError(
                f"the offline limit models dense decoders; model_type "
                f"{getattr(config, 'model_type', None)!r} routes tokens to experts, so the weights "
                "a step streams depend on the batch's routing"
            )
        num_heads = int(config.num_attention_heads)
        num_kv_heads = int(getattr(config, "num_key_value_heads", None) or num_heads)
        head_size = int(getattr(config, "head_dim", None) or int(config.hidden_size) // num_heads)
        num_layers = int(config.num_hidden_layers)
        head_params = counts.embedding_params if counts.tied else counts.output_head_params
        return cls(
            streamed_weight_bytes=(counts.layer_params + counts.final_norm_params + head_params)
            * dtype_bytes,
            embedding_row_bytes=counts.hidden_size * dtype_bytes,
            layer_params=counts.layer_params,
            head_params=head_params,
            kv_bytes_per_token=num_layers * 2 * num_kv_heads * head_size * dtype_bytes,
            attention_flops_per_key=num_layers * 4 * num_heads * head_size,
        )


@attrs.frozen(kw_only=True)
class OfflineWorkload:
    """`num_prompts` prompts of `input_len` tokens, `output_len` tokens each (ignore_eos)."""

    num_prompts: int
    input_len: int
    output_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    kv_capacity_tokens: int | None = None  # None: the cache never limits admission

    def __attrs_post_init__(self) -> None:
        for name in ("num_prompts", "input_len", "output_len", "max_num_seqs", "max_num_batched_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.kv_capacity_tokens is not None and self.kv_capacity_tokens < self.final_kv_tokens:
            raise ValueError(
                f"one request needs KV for {self.final_kv_tokens} tokens but kv_capacity_tokens is "
                f"{self.kv_capacity_tokens}; give the cache more tokens or shorten the workload"
            )

    @property
    def final_kv_tokens(self) -> int:
        """KV one finished request held: its last sampled token is never fed back."""
        return self.input_len + self.output_len - 1


@attrs.frozen
class ScheduledChunk:
    """One request's share of a step: `num_new_tokens` after `num_computed_tokens`."""

    request_index: int
    num_computed_tokens: int
    num_new_tokens: int
    samples: bool  # the chunk reaches the request's last known token, so a token is sampled


def schedule_steps(workload: OfflineWorkload) -> Iterator[tuple[ScheduledChunk, ...]]:
    """The engine's steps for `workload`, each as its scheduled chunks in schedule order."""
    waiting = deque(range(workload.num_prompts))
    running: list[int] = []  # admission order
    num_computed = [0] * workload.num_prompts
    num_tokens = [workload.input_len] * workload.num_prompts  # prompt + sampled so far
    num_reserved_tokens = 0  # final KV tokens of every running request
    while waiting or running:
        budget_tokens = workload.max_num_batched_tokens
        chunks: list[ScheduledChunk] = []
        for request in running:
            if budget_tokens == 0:
                break
            num_new = min(num_tokens[request] - num_computed[request], budget_tokens)
            chunks.append(_chunk(request, num_computed[request], num_new, num_tokens[request]))
            budget_tokens -= num_new
        while waiting and budget_tokens > 0 and len(running) < workload.max_num_seqs:
            capacity = workload.kv_capacity_tokens
            if capacity is not None and num_reserved_tokens + workload.final_kv_tokens > capacity:
                break
            request = waiting.popleft()
            running.append(request)
            num_reserved_tokens += workload.final_kv_tokens
            num_new = min(workload.input_len, budget_tokens)
            chunks.append(_chunk(request, 0, num_new, num_tokens[request]))
            budget_tokens -= num_new
        assert chunks, "a step with running or waiting requests schedules something"
        yield tuple(chunks)
        for chunk in chunks:
            request = chunk.request_index
            num_computed[request] += chunk.num_new_tokens
            if chunk.samples:
                num_tokens[request] += 1
                if num_tokens[request] - workload.input_len == workload.output_len:
                    running.remove(request)
                    num_reserved_tokens -= workload.final_kv_tokens


def _chunk(request: int, num_computed: int, num_new: int, num_tokens: int) -> ScheduledChunk:
    return ScheduledChunk(request_index=request, num_computed_tokens=num_computed,
                          num_new_tokens=num_new, samples=num_computed + num_new == num_tokens)


@attrs.frozen(kw_only=True)
class StepCost:
    weight_bytes: int  # streamed weights and the embedding rows looked up
    kv_bytes: int  # KV read by attention and this step's K/V written
    linear_flops: int  # the layers' and the head's matmuls
    attention_flops: int

    @property
    def num_bytes(self) -> int:
        return self.weight_bytes + self.kv_bytes

    @property
    def num_flops(self) -> int:
        return self.linear_flops + self.attention_flops


def step_cost(costs: ModelCosts, chunks: tuple[ScheduledChunk, ...]) -> StepCost:
    num_new_tokens = sum(chunk.num_new_tokens for chunk in chunks)
    num_sampled = sum(chunk.samples for chunk in chunks)
    # Tokens whose K/V attention reads: each sequence's cached tokens and this step's.
    num_kv_read_tokens = sum(chunk.num_computed_tokens + chunk.num_new_tokens for chunk in chunks)
    # Query j of a chunk sits at position c + j and attends to c + j + 1 keys.
    num_attended_keys = sum(
        chunk.num_new_tokens * chunk.num_computed_tokens
        + chunk.num_new_tokens * (chunk.num_new_tokens + 1) // 2
        for chunk in chunks
    )
    return StepCost(
        weight_bytes=costs.streamed_weight_bytes + num_new_tokens * costs.embedding_row_bytes,
        kv_bytes=(num_kv_read_tokens + num_new_tokens) * costs.kv_bytes_per_token,
        linear_flops=2 * costs.layer_params * num_new_tokens + 2 * costs.head_params * num_sampled,
        attention_flops=costs.attention_flops_per_key * num_attended_keys,
    )


@attrs.frozen(kw_only=True)
class OfflineLimit:
    workload: OfflineWorkload
    copy_bandwidth_bytes_per_s: float
    matmul_flops_per_s: float
    floor_s: float
    serial_floor_s: float  # matmuls, then attention, each at its own bound (module docstring)
    num_steps: int
    num_memory_bound_steps: int  # steps whose bytes took longer than their FLOPs
    total_bytes: int
    total_flops: int

    @property
    def num_output_tokens(self) -> int:
        return self.workload.num_prompts * self.workload.output_len

    @property
    def output_tokens_per_s(self) -> float:
        return self.num_output_tokens / self.floor_s

    @property
    def serial_output_tokens_per_s(self) -> float:
        return self.num_output_tokens / self.serial_floor_s

    @property
    def total_tokens_per_s(self) -> float:
        return self.workload.num_prompts * (self.workload.input_len + self.workload.output_len) / self.floor_s

    def as_limit(self) -> dict[str, Any]:
        """The record's `limit`: value in output tokens/s and how it was computed."""
        workload = self.workload
        return {
            "value": round(self.output_tokens_per_s, 2),
            "unit": "output tokens/s",
            "how": (
                f"sum over {self.num_steps} simulated engine steps ({workload.num_prompts} prompts, "
                f"{workload.input_len} in / {workload.output_len} out, max_num_seqs "
                f"{workload.max_num_seqs}, {workload.max_num_batched_tokens} tokens per step, "
                f"{_capacity_text(workload.kv_capacity_tokens)}) of max(bytes / "
                f"copy bandwidth {self.copy_bandwidth_bytes_per_s / 1e12:.3f} TB/s, FLOPs / bf16 "
                f"matmul rate {self.matmul_flops_per_s / 1e12:.1f} TFLOP/s): floor "
                f"{self.floor_s:.4g} s; {self.num_memory_bound_steps} steps memory-bound"
            ),
            "floor_s": round(self.floor_s, 4),
            "serial": {
                "value": round(self.serial_output_tokens_per_s, 2),
                "floor_s": round(self.serial_floor_s, 4),
                "how": "the same steps, each charged max(weight bytes / bandwidth, matmul FLOPs / rate) "
                       "+ max(KV bytes / bandwidth, attention FLOPs / rate): matmuls and attention "
                       "one after the other",
            },
            "total_tokens_per_s": round(self.total_tokens_per_s, 2),
            "num_steps": self.num_steps,
            "num_memory_bound_steps": self.num_memory_bound_steps,
            "total_bytes": self.total_bytes,
            "total_flops": self.total_flops,
            "copy_bandwidth_bytes_per_s": round(self.copy_bandwidth_bytes_per_s),
            "matmul_flops_per_s": round(self.matmul_flops_per_s),
            "kv_capacity_tokens": workload.kv_capacity_tokens,
        }


def _capacity_text(kv_capacity_tokens: int | None) -> str:
    if kv_capacity_tokens is None:
        return "KV cache unbounded"
    return f"KV cache of {kv_capacity_tokens} tokens"


def offline_limit(costs: ModelCosts, workload: OfflineWorkload, *, copy_bandwidth_bytes_per_s: float,
                  matmul_flops_per_s: float) -> OfflineLimit:
    """The floor time of `workload` on a card with these two measured rates."""
    if copy_bandwidth_bytes_per_s <= 0 or matmul_flops_per_s <= 0:
        raise ValueError("the copy bandwidth and the matmul rate must be positive")
    floor_s = serial_floor_s = 0.0
    num_steps = num_memory_bound_steps = total_bytes = total_flops = 0
    for chunks in schedule_steps(workload):
        cost = step_cost(costs, chunks)
        memory_s = cost.num_bytes / copy_bandwidth_bytes_per_s
        compute_s = cost.num_flops / matmul_flops_per_s
        floor_s += max(memory_s, compute_s)
        serial_floor_s += (max(cost.weight_bytes / copy_bandwidth_bytes_per_s,
                               cost.linear_flops / matmul_flops_per_s)
                           + max(cost.kv_bytes / copy_bandwidth_bytes_per_s,
                                 cost.attention_flops / matmul_flops_per_s))
        num_steps += 1
        num_memory_bound_steps += memory_s >= compute_s
        total_bytes += cost.num_bytes
        total_flops += cost.num_flops
    return OfflineLimit(
        workload=workload, copy_bandwidth_bytes_per_s=copy_bandwidth_bytes_per_s,
        matmul_flops_per_s=matmul_flops_per_s, floor_s=floor_s, serial_floor_s=serial_floor_s, num_steps=num_steps,
        num_memory_bound_steps=num_memory_bound_steps, total_bytes=total_bytes, total_flops=total_flops,
    )
