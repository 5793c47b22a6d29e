"""Every frontend <-> engine-core message survives msgpack encoding exactly."""

from __future__ import annotations

import random

import attrs
import msgspec
import pytest

from tenon.engine.core import EngineStats
from tenon.engine.scheduler_output import EngineCoreOutput
from tenon.sampling.params import SamplingParams
from tenon.server.engine_interface import ModelInfo
from tenon.server.protocol import (
    Abort,
    AddRequest,
    EngineOutputStruct,
    Outputs,
    Ready,
    RequestRejected,
    SamplingParamsStruct,
    Shutdown,
    StartupFailed,
    Stats,
    decode_input,
    decode_output,
    encode,
    engine_output_from_struct,
    engine_output_to_struct,
    model_info_from_struct,
    model_info_to_struct,
    sampling_params_from_struct,
    sampling_params_to_struct,
    stats_from_struct,
    stats_to_struct,
)


def _random_sampling_params(rng: random.Random) -> SamplingParams:
    max_tokens = rng.choice([None, rng.randrange(5, 100)])
    return SamplingParams(
        n=rng.randrange(1, 5), temperature=rng.uniform(0.0, 2.0), top_p=rng.uniform(0.01, 1.0),
        top_k=rng.choice([-1, 0, rng.randrange(1, 50)]), min_p=rng.uniform(0.0, 1.0),
        presence_penalty=rng.uniform(-2.0, 2.0), frequency_penalty=rng.uniform(-2.0, 2.0),
        repetition_penalty=rng.uniform(0.5, 2.0), seed=rng.choice([None, rng.randrange(2**63)]),
        stop=[f"s{rng.randrange(100)}" for _ in range(rng.randrange(3))],
        stop_token_ids=[rng.randrange(1000) for _ in range(rng.randrange(3))],
        ignore_eos=rng.random() < 0.5, max_tokens=max_tokens,
        min_tokens=rng.randrange(0, 5), logprobs=rng.choice([None, rng.randrange(0, 20)]),
        prompt_logprobs=rng.choice([None, rng.randrange(0, 20)]),
        skip_special_tokens=rng.random() < 0.5, spaces_between_special_tokens=rng.random() < 0.5,
        include_stop_str_in_output=rng.random() < 0.5, detokenize=rng.random() < 0.5,
    )


def _logprob_entry(rng: random.Random, num: int) -> tuple[list[int], list[float], int]:
    return ([rng.randrange(320) for _ in range(num)], [-rng.expovariate(1.0) for _ in range(num)],
            rng.randrange(1, 320))


def test_wire_structs_mirror_the_records() -> None:
    # A field added to a record must be added to its struct, or it would be dropped on the wire.
    assert SamplingParamsStruct.__struct_fields__ == tuple(f.name for f in attrs.fields(SamplingParams))
    assert EngineOutputStruct.__struct_fields__ == tuple(f.name for f in attrs.fields(EngineCoreOutput))
    assert Stats.__struct_fields__ == tuple(f.name for f in attrs.fields(EngineStats))
    assert Ready.__struct_fields__ == tuple(f.name for f in attrs.fields(ModelInfo))


def test_sampling_params_round_trip_exactly() -> None:
    rng = random.Random(0)
    cases = [SamplingParams(), SamplingParams(temperature=0.0, top_k=-1, stop="x")]
    cases += [_random_sampling_params(rng) for _ in range(50)]
    for params in cases:
        message = AddRequest(request_id="r", prompt_token_ids=[5, 6], eos_token_id=0,
                             sampling_params=sampling_params_to_struct(params), arrival_time_s=1.5)
        decoded = decode_input(encode(message))
        assert decoded == message
        assert isinstance(decoded, AddRequest)
        restored = sampling_params_from_struct(decoded.sampling_params)
        assert restored == params
        for field in attrs.fields(SamplingParams):  # same types too: tuples stay tuples
            before, after = getattr(params, field.name), getattr(restored, field.name)
            assert (after, type(after)) == (before, type(before))


def test_engine_outputs_round_trip_with_logprobs() -> None:
    rng = random.Random(1)
    outputs = [
        EngineCoreOutput(request_id="a", new_token_ids=[7]),
        EngineCoreOutput(request_id="b", new_token_ids=[3, 4], finish_reason="stop", stop_reason=4,
                         num_cached_tokens=32, logprobs=[_logprob_entry(rng, 3), _logprob_entry(rng, 3)],
                         prompt_logprobs=[None, _logprob_entry(rng, 2), _logprob_entry(rng, 2)]),
        EngineCoreOutput(request_id="c", new_token_ids=[], finish_reason="abort", stop_reason="</s>"),
    ]
    decoded = decode_output(encode(Outputs(outputs=[engine_output_to_struct(o) for o in outputs])))
    assert isinstance(decoded, Outputs)
    restored = [engine_output_from_struct(struct) for struct in decoded.outputs]
    assert restored == outputs
    assert restored[1].logprobs[0][1] == outputs[1].logprobs[0][1]  # floats bit-exact  # type: ignore[index]


def test_control_messages_round_trip() -> None:
    stats = EngineStats(num_requests_running=3, num_requests_waiting=1, kv_cache_usage_perc=0.3125,
                        num_preemptions_total=2, prefix_cache_queries_total=100, prefix_cache_hits_total=48)
    info = ModelInfo(served_model_name="tiny", max_model_len=256, vocab_size=320, eos_token_id=None,
                     model_path="/models/tiny")
    decoded_stats = decode_output(encode(stats_to_struct(stats)))
    assert isinstance(decoded_stats, Stats) and stats_from_struct(decoded_stats) == stats
    decoded_ready = decode_output(encode(model_info_to_struct(info)))
    assert isinstance(decoded_ready, Ready) and model_info_from_struct(decoded_ready) == info
    for message in (RequestRejected(request_id="r", message="too long", kind="queue_full"),
                    StartupFailed(message="model 'x' not found")):
        assert decode_output(encode(message)) == message
    for input_message in (Abort(request_ids=["a", "b"]), Shutdown()):
        assert decode_input(encode(input_message)) == input_message


def test_decoders_refuse_the_other_direction_and_bad_kinds() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_input(encode(StartupFailed(message="x")))
    with pytest.raises(msgspec.ValidationError):
        decode_output(encode(Abort(request_ids=["a"])))
    with pytest.raises(msgspec.ValidationError):
        decode_output(encode(RequestRejected(request_id="r", message="m", kind="bogus")))  # type: ignore[arg-type]
