"""Messages between the HTTP frontend and the engine-core process, msgpack-encoded by msgspec.

Two PUSH/PULL streams, one per direction (both sockets bound by the frontend):

    frontend --AddRequest | Abort | Shutdown----------------------------> engine core
    frontend <--Ready | StartupFailed | Outputs | RequestRejected | Stats-- engine core

Every message is an array-like tagged struct (the tag is the class name, first in the array),
so one decoder per direction tells the kinds apart and field names never travel. The structs
mirror attrs records of the engine (`SamplingParams`, `EngineCoreOutput`, `EngineStats`,
`ModelInfo`); the `*_to_struct` / `*_from_struct` pairs convert exactly, and the tests hold the
field lists equal so a field added to a record cannot be dropped on the wire silently.
"""

from __future__ import annotations

from typing import Literal

import attrs
import msgspec

from tenon.engine.core import EngineStats
from tenon.engine.kv_tier_stats import TierStats
from tenon.engine.scheduler_output import EngineCoreOutput
from tenon.sampling.params import SamplingParams
from tenon.server.engine_interface import ModelInfo

# (token ids, logprobs, rank of the sampled or prompt token): the sampled/prompt token first,
# then the top-k, as the model runner produces them.
LogprobEntry = tuple[list[int], list[float], int]

RejectionKind = Literal["invalid", "queue_full"]


class SamplingParamsStruct(msgspec.Struct, array_like=True, frozen=True):
    """`SamplingParams` on the wire. No defaults: every field is always sent, so the record's
    own defaults stay the only ones."""

    n: int
    temperature: float
    top_p: float
    top_k: int
    min_p: float
    presence_penalty: float
    frequency_penalty: float
    repetition_penalty: float
    seed: int | None
    stop: tuple[str, ...]
    stop_token_ids: tuple[int, ...]
    ignore_eos: bool
    max_tokens: int | None
    min_tokens: int
    logprobs: int | None
    prompt_logprobs: int | None
    skip_special_tokens: bool
    spaces_between_special_tokens: bool
    include_stop_str_in_output: bool
    detokenize: bool


class EngineOutputStruct(msgspec.Struct, array_like=True, frozen=True):
    """`EngineCoreOutput` on the wire."""

    request_id: str
    new_token_ids: list[int]
    finish_reason: str | None
    stop_reason: int | str | None
    num_cached_tokens: int
    logprobs: list[LogprobEntry] | None
    # None for the first prompt token, which has no logprob.
    prompt_logprobs: list[LogprobEntry | None] | None


# frontend -> engine core


class AddRequest(msgspec.Struct, array_like=True, frozen=True, tag=True):
    request_id: str
    prompt_token_ids: list[int]
    sampling_params: SamplingParamsStruct
    eos_token_id: int | None
    arrival_time_s: float


class Abort(msgspec.Struct, array_like=True, frozen=True, tag=True):
    request_ids: list[str]


class Shutdown(msgspec.Struct, array_like=True, frozen=True, tag=True):
    pass


InputMessage = AddRequest | Abort | Shutdown


# engine core -> frontend


class Ready(msgspec.Struct, array_like=True, frozen=True, tag=True):
    served_model_name: str
    max_model_len: int
    vocab_size: int
    eos_token_id: int | None
    model_path: str


class StartupFailed(msgspec.Struct, array_like=True, frozen=True, tag=True):
    message: str


class Outputs(msgspec.Struct, array_like=True, frozen=True, tag=True):
    """The outputs of one engine step (never empty)."""

    outputs: list[EngineOutputStruct]


class RequestRejected(msgspec.Struct, array_like=True, frozen=True, tag=True):
    request_id: str
    message: str
    kind: RejectionKind


class TierStatsStruct(msgspec.Struct, array_like=True, frozen=True):
    """`TierStats` (one KV tier's totals) on the wire."""

    tier: str
    capacity_bytes: int
    used_bytes: int
    num_hit_blocks: int
    num_stored_blocks: int
    num_evicted_blocks: int
    stored_bytes: int
    loaded_bytes: int
    num_stores: int
    store_time_s: float
    num_loads: int
    load_time_s: float
    num_load_failures: int
    num_store_failures: int
    num_full_skips: int
    num_invalid_files: int


class Stats(msgspec.Struct, array_like=True, frozen=True, tag=True):
    num_requests_running: int
    num_requests_waiting: int
    kv_cache_usage_perc: float
    num_preemptions_total: int
    prefix_cache_queries_total: int
    prefix_cache_hits_total: int
    kv_connector_queried_tokens_total: int
    kv_connector_hit_tokens_total: int
    kv_connector_load_bytes_total: int
    kv_connector_store_bytes_total: int
    kv_connector_load_seconds_total: float
    kv_connector_load_steps_total: int
    kv_connector_store_seconds_total: float
    kv_connector_stores_total: int
    kv_connector_failed_blocks_total: int
    kv_connector_recomputed_requests_total: int
    kv_tier_stats: list[TierStatsStruct]


OutputMessage = Ready | StartupFailed | Outputs | RequestRejected | Stats

# Encoders and decoders hold no per-message state; one of each serves the whole process.
_ENCODER = msgspec.msgpack.Encoder()
_INPUT_DECODER = msgspec.msgpack.Decoder(InputMessage)
_OUTPUT_DECODER = msgspec.msgpack.Decoder(OutputMessage)


def encode(message: InputMessage | OutputMessage) -> bytes:
    return _ENCODER.encode(message)


def decode_input(data: bytes) -> InputMessage:
    """A frontend -> engine core message; raises msgspec.DecodeError on a malformed one."""
    return _INPUT_DECODER.decode(data)


def decode_output(data: bytes) -> OutputMessage:
    """An engine core -> frontend message; raises msgspec.DecodeError on a malformed one."""
    return _OUTPUT_DECODER.decode(data)


def sampling_params_to_struct(params: SamplingParams) -> SamplingParamsStruct:
    return SamplingParamsStruct(
        **{name: getattr(params, name) for name in SamplingParamsStruct.__struct_fields__}
    )


def sampling_params_from_struct(struct: SamplingParamsStruct) -> SamplingParams:
    """Raises ValueError (from `SamplingParams`' checks) for values the frontend should have
    refused."""
    return SamplingParams(**msgspec.structs.asdict(struct))


def engine_output_to_struct(output: EngineCoreOutput) -> EngineOutputStruct:
    return EngineOutputStruct(
        request_id=output.request_id,
        new_token_ids=output.new_token_ids,
        finish_reason=output.finish_reason,
        stop_reason=output.stop_reason,
        num_cached_tokens=output.num_cached_tokens,
        logprobs=output.logprobs,  # the runner's LogprobEntry lists, passed through
        prompt_logprobs=output.prompt_logprobs,
    )


def engine_output_from_struct(struct: EngineOutputStruct) -> EngineCoreOutput:
    return EngineCoreOutput(
        request_id=struct.request_id,
        new_token_ids=struct.new_token_ids,
        finish_reason=struct.finish_reason,
        stop_reason=struct.stop_reason,
        num_cached_tokens=struct.num_cached_tokens,
        logprobs=struct.logprobs,
        prompt_logprobs=struct.prompt_logprobs,
    )


def stats_to_struct(stats: EngineStats) -> Stats:
    fields = attrs.asdict(stats, recurse=False)
    fields["kv_tier_stats"] = [TierStatsStruct(**attrs.asdict(tier)) for tier in stats.kv_tier_stats]
    return Stats(**fields)


def stats_from_struct(struct: Stats) -> EngineStats:
    fields = msgspec.structs.asdict(struct)
    fields["kv_tier_stats"] = tuple(
        TierStats(**msgspec.structs.asdict(tier)) for tier in struct.kv_tier_stats
    )
    return EngineStats(**fields)


def model_info_to_struct(info: ModelInfo) -> Ready:
    return Ready(**attrs.asdict(info))


def model_info_from_struct(struct: Ready) -> ModelInfo:
    return ModelInfo(**msgspec.structs.asdict(struct))
