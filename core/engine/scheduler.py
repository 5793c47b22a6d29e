"""The scheduler: how many tokens each request advances this step.

Prefill, chunked prefill and decode are one mechanism: a request advances by
`num_tokens - num_computed_tokens` tokens, capped by the step's token budget. Policy is
vLLM v1's FCFS:

1. Running requests, in admission order. When the KV cache cannot hold a request's new
   tokens, the most recently admitted running request is preempted (blocks freed, to be
   recomputed later; it goes to the front of the waiting queue) until the allocation fits or
   the request has preempted itself.
2. Waiting requests, in order, while budget and sequence slots remain and nothing was
   preempted this step: prefix-cache lookup, then as many prompt tokens as the budget allows.
   The first request that does not fit stops admission (no overtaking). With KV reservation
   (`schedule_conservativeness` > 0, the default; `tenon.engine.admission`) a request also
   waits while the free cache cannot hold what the running requests are expected to need
   besides its own, so fewer requests are preempted and recomputed.

Asynchronous scheduling (`async_scheduling=True`, vLLM's `--async-scheduling`): the engine
schedules step N+1 while step N runs on the device, before N's tokens are known. Scheduling then
advances `num_computed_tokens` itself and counts each token a step will sample as a placeholder;
`update_from_output` replaces placeholders with the tokens and runs the stop checks one step
late, so a request that stopped at step N has also been scheduled in N+1; that token is dropped.
Blocks filled only by known tokens enter the prefix cache; a block is never hashed while it
holds a placeholder.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

from tenon.engine.admission import (
    KVReservation,
    NewTokenRatio,
    expected_kv_tokens,
    max_output_tokens,
)
from tenon.engine.kv_cache_manager import KVCacheManager
from tenon.engine.kv_transfer import KVTransferScheduler
from tenon.engine.request import Request, RequestStatus
from tenon.engine.scheduler_output import (
    CachedRequestData,
    EngineCoreOutput,
    NewRequestData,
    RunnerOutput,
    SchedulerOutput,
)


class Scheduler:
    def __init__(
        self,
        kv_cache_manager: KVCacheManager,
        *,
        max_num_seqs: int,
        max_num_batched_tokens: int,
        max_model_len: int,
        enable_chunked_prefill: bool = True,
        long_prefill_token_threshold: int | None = None,
        kv_transfer: KVTransferScheduler | None = None,
        async_scheduling: bool = False,
        schedule_conservativeness: float = 1.0,
    ) -> None:
        for name, value in (
            ("--max-num-seqs", max_num_seqs),
            ("--max-num-batched-tokens", max_num_batched_tokens),
            ("--max-model-len", max_model_len),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not enable_chunked_prefill and max_num_batched_tokens < max_model_len:
            raise ValueError(
                f"--max-num-batched-tokens ({max_num_batched_tokens}) is smaller than "
                f"--max-model-len ({max_model_len}) with chunked prefill disabled, so long "
                "prompts could never be scheduled; raise --max-num-batched-tokens, lower "
                "--max-model-len, or enable chunked prefill"
            )
        if long_prefill_token_threshold is not None and (
            long_prefill_token_threshold < 1 or not enable_chunked_prefill
        ):
            raise ValueError(
                f"long_prefill_token_threshold {long_prefill_token_threshold} needs chunked "
                "prefill enabled and a value >= 1; enable chunked prefill or leave it unset"
            )
        self.kv_cache_manager = kv_cache_manager
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.max_model_len = max_model_len
        self.enable_chunked_prefill = enable_chunked_prefill
        self.long_prefill_token_threshold = long_prefill_token_threshold
        # The engine builder refuses the pair with a message for the user.
        assert not (async_scheduling and kv_transfer is not None), "async scheduling with a KV connector"
        self.async_scheduling = async_scheduling
        self.new_token_ratio = NewTokenRatio.for_conservativeness(schedule_conservativeness)
        self.reserve_kv = schedule_conservativeness > 0
        # The KV connector's glue (tenon.engine.kv_transfer); None without a connector.
        self.kv_transfer = kv_transfer
        # Requests sent back to waiting after a failed KV load; the workers drop their state.
        self._recomputed_request_ids: set[str] = set()

        self.requests: dict[str, Request] = {}
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        # Finished or aborted since the last schedule(); the workers hear of them next step.
        self._finished_request_ids: set[str] = set()
        self.num_preemptions_total = 0

    @property
    def num_running(self) -> int:
        return len(self.running)

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    def has_unfinished_requests(self) -> bool:
        return bool(self.running or self.waiting)

    def has_finished_requests(self) -> bool:
        """Whether the next schedule() has finished request ids to pass to the workers."""
        return bool(self._finished_request_ids)

    def has_pending_kv_transfers(self) -> bool:
        """Whether finished requests' blocks are kept until the KV connector saves them."""
        return self.kv_transfer is not None and self.kv_transfer.has_pending_transfers()

    def add_request(self, request: Request) -> None:
        if request.request_id in self.requests:
            raise ValueError(f"request id {request.request_id!r} is already in use")
        self._check_request_fits(request)
        request.status = RequestStatus.WAITING
        self.requests[request.request_id] = request
        self.waiting.append(request)

    def abort_requests(self, request_ids: Iterable[str]) -> None:
        """Finish the given requests now, freeing their blocks. Unknown ids are ignored:
        a request may finish on its own while its abort is in flight."""
        aborted_ids = set()
        for request_id in request_ids:
            request = self.requests.pop(request_id, None)
            if request is None:
                continue
            request.status = RequestStatus.FINISHED_ABORTED
            self._free_finished(request)
            self._finished_request_ids.add(request_id)
            aborted_ids.add(request_id)
        if aborted_ids:
            self.running = [r for r in self.running if r.request_id not in aborted_ids]
            self.waiting = deque(r for r in self.waiting if r.request_id not in aborted_ids)

    def schedule(self) -> SchedulerOutput:
        token_budget = self.max_num_batched_tokens
        new_requests: list[NewRequestData] = []
        cached_requests: list[CachedRequestData] = []
        num_scheduled_tokens: dict[str, int] = {}
        preempted_request_ids: set[str] = set()

        request_index = 0
        while request_index < len(self.running) and token_budget > 0:
            request = self.running[request_index]
            if request.num_output_placeholders and not self._may_need_more_tokens(request):
                request_index += 1  # its pending token is its last: nothing to run ahead
                continue
            num_new_tokens = self._num_tokens_to_schedule(
                request, request.num_computed_tokens, token_budget
            )
            while True:
                new_blocks = self.kv_cache_manager.allocate_slots(request, num_new_tokens)
                if new_blocks is not None:
                    break
                preempted = self.running.pop()
                self._preempt(preempted)
                preempted_request_ids.add(preempted.request_id)
                if preempted is request:
                    break
            if new_blocks is None:
                break
            cached_requests.append(
                CachedRequestData(
                    request_id=request.request_id,
                    new_block_ids=list(new_blocks.block_ids),
                    num_computed_tokens=request.num_computed_tokens,
                )
            )
            self._advance_if_async(request, num_new_tokens)
            num_scheduled_tokens[request.request_id] = num_new_tokens
            token_budget -= num_new_tokens
            request_index += 1

        if preempted_request_ids:
            self.new_token_ratio.on_preemption()
        else:
            self.new_token_ratio.step()
        # Built when a waiting request is first considered (a walk over the running requests).
        reservation: KVReservation | None = None
        # A preemption means the cache is full: admitting anyone now would only thrash.
        while (
            not preempted_request_ids
            and self.waiting
            and token_budget > 0
            and len(self.running) < self.max_num_seqs
        ):
            request = self.waiting[0]
            assert request.num_computed_tokens == 0
            if request.num_output_placeholders:
                break  # preempted while its last token was in flight: readmit once it lands
            computed_blocks, num_computed_tokens = self.kv_cache_manager.get_computed_blocks(
                request
            )
            num_external_tokens = 0
            if self.kv_transfer is not None:
                num_external_tokens = self.kv_transfer.num_external_tokens(
                    request, num_computed_tokens
                )
            num_remaining_tokens = request.num_tokens - num_computed_tokens - num_external_tokens
            if not self.enable_chunked_prefill and num_remaining_tokens > token_budget:
                break
            num_new_tokens = self._num_tokens_to_schedule(
                request, num_computed_tokens + num_external_tokens, token_budget
            )
            if reservation is None:
                reservation = self._running_reservation(num_scheduled_tokens)
            expected_tokens = self._expected_kv_tokens(request, num_computed_tokens)
            if not reservation.admits(expected_tokens, free_tokens=self._num_free_tokens(),
                                      anyone_running=bool(self.running)):
                break
            new_blocks = self.kv_cache_manager.allocate_slots(
                request, num_external_tokens + num_new_tokens, computed_blocks,
                cache_blocks=num_external_tokens == 0,  # cached next step, once the load is good
            )
            if new_blocks is None:
                break
            self.waiting.popleft()
            self.running.append(request)
            reservation.reserve(expected_tokens, allocated_now=num_external_tokens + num_new_tokens)
            request.status = RequestStatus.RUNNING
            if self.kv_transfer is not None:
                self.kv_transfer.on_allocated(request, num_computed_tokens, num_external_tokens)
            num_computed_tokens += num_external_tokens
            request.num_computed_tokens = num_computed_tokens
            if request.num_cached_tokens is None:
                request.num_cached_tokens = num_computed_tokens
            new_requests.append(
                NewRequestData(
                    request_id=request.request_id,
                    prompt_token_ids=request.prompt_token_ids,
                    sampling_params=request.sampling_params,
                    block_ids=self.kv_cache_manager.get_block_ids(request.request_id),
                    num_computed_tokens=num_computed_tokens,
                    output_token_ids=list(request.output_token_ids),
                )
            )
            self._advance_if_async(request, num_new_tokens)
            num_scheduled_tokens[request.request_id] = num_new_tokens
            token_budget -= num_new_tokens

        finished_request_ids, self._finished_request_ids = self._finished_request_ids, set()
        if self._recomputed_request_ids:
            preempted_request_ids |= self._recomputed_request_ids
            self._recomputed_request_ids = set()
        return SchedulerOutput(
            scheduled_new_requests=new_requests,
            scheduled_cached_requests=cached_requests,
            num_scheduled_tokens=num_scheduled_tokens,
            total_num_scheduled_tokens=self.max_num_batched_tokens - token_budget,
            finished_request_ids=finished_request_ids,
            preempted_request_ids=preempted_request_ids,
            kv_connector_metadata=(
                None if self.kv_transfer is None else self.kv_transfer.build_step_metadata()
            ),
        )

    def update_from_output(
        self, scheduler_output: SchedulerOutput, runner_output: RunnerOutput
    ) -> list[EngineCoreOutput]:
        """Advance the scheduled requests, append sampled tokens, run the stop checks and
        free finished requests. Returns one output per request that gained tokens or
        finished (or has prompt logprobs to pass on)."""
        index_of = {request_id: i for i, request_id in enumerate(runner_output.request_ids)}
        outputs = []
        any_finished = False
        recomputed: set[str] = set()
        if self.kv_transfer is not None:
            recomputed = self.kv_transfer.process_output(runner_output.kv_connector_output)
            for request_id in recomputed:
                self._recompute_after_failed_load(self.requests[request_id])
        for request_id, num_tokens in scheduler_output.num_scheduled_tokens.items():
            request = self.requests.get(request_id)
            if request is None or request_id in recomputed:
                continue  # aborted after it was scheduled, or computed from a failed load
            index = index_of.get(request_id)
            sampled_token_ids = [] if index is None else runner_output.sampled_token_ids[index]
            if self.async_scheduling:
                # num_computed_tokens moved at scheduling; each sampled token fills a placeholder
                assert request.num_output_placeholders >= len(sampled_token_ids)
                request.num_output_placeholders -= len(sampled_token_ids)
            else:
                request.num_computed_tokens += num_tokens
                assert request.num_computed_tokens <= request.num_tokens
                assert sampled_token_ids or request.num_computed_tokens < request.num_tokens, (
                    f"the runner sampled nothing for {request_id}, which reached its last token"
                )
                assert not sampled_token_ids or request.num_computed_tokens == request.num_tokens, (
                    "sampled mid-prefill"
                )
            new_token_ids = []
            if sampled_token_ids:
                for token_id in sampled_token_ids:
                    request.append_output_token_ids(token_id)
                    new_token_ids.append(token_id)
                    if self._check_stop(request):
                        break
            logprobs = _pick(runner_output.logprobs, index)
            prompt_logprobs = _pick(runner_output.prompt_logprobs, index)
            if request.is_finished:
                any_finished = True
                del self.requests[request_id]
                self._free_finished(request)
                self._finished_request_ids.add(request_id)
                # Preempted while its last token was in flight (a running request has computed
                # tokens; the scan runs only for one that has none).
                if request.num_computed_tokens == 0 and request in self.waiting:
                    self.waiting.remove(request)
            if new_token_ids or request.is_finished or prompt_logprobs is not None:
                outputs.append(
                    EngineCoreOutput(
                        request_id=request_id,
                        new_token_ids=new_token_ids,
                        finish_reason=request.finish_reason,
                        stop_reason=request.stop_reason,
                        num_cached_tokens=request.num_cached_tokens or 0,
                        logprobs=logprobs,
                        prompt_logprobs=prompt_logprobs,
                    )
                )
        if any_finished:
            self.running = [request for request in self.running if not request.is_finished]
        return outputs

    def _num_free_tokens(self) -> int:
        manager = self.kv_cache_manager
        return manager.num_free_blocks * manager.block_size

    def _expected_kv_tokens(self, request: Request, num_allocated_tokens: int) -> int:
        """KV slots `request` is expected to add beyond `num_allocated_tokens` (admission), in
        whole blocks: what the cache will have to give it."""
        extra = expected_kv_tokens(request, num_allocated_tokens=num_allocated_tokens,
                                   ratio=self.new_token_ratio.value, max_model_len=self.max_model_len)
        block_size = self.kv_cache_manager.block_size
        num_held_blocks = -(-num_allocated_tokens // block_size)
        return (math.ceil((num_allocated_tokens + extra) / block_size) - num_held_blocks) * block_size

    def _running_reservation(self, num_scheduled_tokens: dict[str, int]) -> KVReservation:
        """This step's admission budget: what the running requests are expected to add to the
        cache beyond what they hold after this step's allocations."""
        reservation = KVReservation(enabled=self.reserve_kv)
        if not self.reserve_kv:
            return reservation
        for request in self.running:
            num_allocated = request.num_computed_tokens
            if not self.async_scheduling:  # asynchronous scheduling advanced it already
                num_allocated += num_scheduled_tokens.get(request.request_id, 0)
            reservation.reserved_tokens += self._expected_kv_tokens(request, num_allocated)
        return reservation

    def _advance_if_async(self, request: Request, num_new_tokens: int) -> None:
        """Asynchronous scheduling: count this step's tokens as computed now, and the token it
        samples (when the chunk reaches the end) as a placeholder."""
        if not self.async_scheduling:
            return
        request.num_computed_tokens += num_new_tokens
        if request.num_computed_tokens == request.num_tokens_with_placeholders:
            request.num_output_placeholders += 1

    def _may_need_more_tokens(self, request: Request) -> bool:
        """Whether a request whose last tokens are still in flight can go on after them: not
        when they reach max_tokens or max_model_len (it will stop for sure)."""
        num_output_tokens = request.num_output_tokens + request.num_output_placeholders
        return num_output_tokens < max_output_tokens(request, self.max_model_len)

    def _num_tokens_to_schedule(
        self, request: Request, num_computed_tokens: int, token_budget: int
    ) -> int:
        num_new_tokens = request.num_tokens_with_placeholders - num_computed_tokens
        threshold = self.long_prefill_token_threshold
        if threshold is not None:
            num_new_tokens = min(num_new_tokens, threshold)
        # Positions stay below max_model_len; the stop check ends requests before that binds.
        num_new_tokens = min(num_new_tokens, token_budget, self.max_model_len - num_computed_tokens)
        assert num_new_tokens > 0, f"nothing to schedule for {request}"
        return num_new_tokens

    def _preempt(self, request: Request) -> None:
        self.kv_cache_manager.free(request)
        request.status = RequestStatus.PREEMPTED
        request.num_computed_tokens = 0
        request.num_preemptions += 1
        self.num_preemptions_total += 1
        self.waiting.appendleft(request)

    def _free_finished(self, request: Request) -> None:
        """Free a finished or aborted request's blocks, unless the KV connector keeps them
        until it has saved them (it frees them then)."""
        if self.kv_transfer is None or not self.kv_transfer.on_request_finished(request):
            self.kv_cache_manager.free(request)

    def _recompute_after_failed_load(self, request: Request) -> None:
        """Back to the front of the waiting queue with nothing computed: whatever this step
        computed read a failed block. Readmission takes local prefix hits (never the failed
        blocks, which were kept out of the prefix cache) and external tokens only below the
        first failed block, then recomputes the rest."""
        self.running.remove(request)
        self.kv_cache_manager.free(request)
        request.status = RequestStatus.WAITING
        request.num_computed_tokens = 0
        request.num_cached_tokens = None  # counted again, without the failed blocks
        self.waiting.appendleft(request)
        self._recomputed_request_ids.add(request.request_id)

    def _check_stop(self, request: Request) -> bool:
        """Set a finished status if the last appended token ends the request."""
        params = request.sampling_params
        last_token_id = request.output_token_ids[-1]
        if request.num_output_tokens >= params.min_tokens:
            if not params.ignore_eos and last_token_id == request.eos_token_id:
                request.status = RequestStatus.FINISHED_STOPPED
                return True
            if last_token_id in params.stop_token_ids:
                request.status = RequestStatus.FINISHED_STOPPED
                request.stop_reason = last_token_id
                return True
        if params.max_tokens is not None and request.num_output_tokens >= params.max_tokens:
            request.status = RequestStatus.FINISHED_LENGTH
            return True
        if request.num_tokens >= self.max_model_len:
            request.status = RequestStatus.FINISHED_LENGTH
            return True
        return False

    def _check_request_fits(self, request: Request) -> None:
        num_prompt_tokens = request.num_prompt_tokens
        if num_prompt_tokens == 0:
            raise ValueError("the prompt is empty; give at least one token")
        if num_prompt_tokens > self.max_model_len:
            raise ValueError(
                f"prompt has {num_prompt_tokens} tokens but --max-model-len is "
                f"{self.max_model_len}; shorten the prompt or raise --max-model-len"
            )
        max_tokens = request.sampling_params.max_tokens
        # The last sampled token is never fed back, so its KV is never written.
        max_kv_tokens = max(num_prompt_tokens,
                            num_prompt_tokens + max_output_tokens(request, self.max_model_len) - 1)
        manager = self.kv_cache_manager
        capacity_tokens = manager.num_usable_blocks * manager.block_size
        if max_kv_tokens > capacity_tokens:
            raise ValueError(
                f"request {request.request_id!r} may need KV cache for {max_kv_tokens} tokens "
                f"(prompt {num_prompt_tokens}, max_tokens {max_tokens}) but the whole KV cache "
                f"holds {capacity_tokens} tokens ({manager.num_usable_blocks} blocks of "
                f"{manager.block_size}); lower max_tokens or shorten the prompt, or give the "
                "KV cache more memory (--gpu-memory-utilization)"
            )


def _pick(per_request: list[object | None] | None, index: int | None) -> object | None:
    if per_request is None or index is None:
        return None
    return per_request[index]
