import random
from collections.abc import Sequence
from typing import Any

import pytest

from tenon.output.detokenizer import IncrementalDetokenizer
from tenon.output.stop_checker import StopResult, StopStringMatcher


def feed_all(matcher: StopStringMatcher, deltas: Sequence[str]) -> tuple[list[str], str | None]:
    """Feed deltas until a stop; return the emitted pieces (the finish() tail last)."""
    emitted = []
    for delta in deltas:
        result = matcher.feed(delta)
        emitted.append(result.text_to_emit)
        if result.stopped:
            return emitted, result.stop_reason
    emitted.append(matcher.finish())
    return emitted, None


def reference_stop(
    text: str, stop: Sequence[str], include_stop_str_in_output: bool
) -> tuple[str, str | None]:
    """Plain rule: scan character by character; the first stop string complete wins, and among
    those completing at the same character the one that starts first."""
    for end in range(1, len(text) + 1):
        completed = [s for s in stop if text[:end].endswith(s)]
        if completed:
            stop_str = max(completed, key=len)
            start = end - len(stop_str)
            return text[: end if include_stop_str_in_output else start], stop_str
    return text, None


def test_stop_within_one_delta() -> None:
    matcher = StopStringMatcher(["User:"], include_stop_str_in_output=False)
    assert matcher.feed("Hello. User: more") == StopResult("Hello. ", True, "User:")
    assert matcher.is_stopped and matcher.stop_reason == "User:"
    assert matcher.finish() == ""


@pytest.mark.parametrize("include", [False, True])
def test_stop_across_two_deltas(include: bool) -> None:
    matcher = StopStringMatcher(["User:"], include_stop_str_in_output=include)
    assert matcher.feed("Hello Us") == StopResult("Hello ", False, None)
    assert matcher.held_text == "Us"
    expected = "User:" if include else ""
    assert matcher.feed("er: next") == StopResult(expected, True, "User:")


@pytest.mark.parametrize("include", [False, True])
def test_stop_across_three_deltas(include: bool) -> None:
    matcher = StopStringMatcher(["<stop>"], include_stop_str_in_output=include)
    assert matcher.feed("abc<s") == StopResult("abc", False, None)
    assert matcher.feed("to") == StopResult("", False, None)
    assert matcher.held_text == "<sto"
    assert matcher.feed("p>xyz") == StopResult("<stop>" if include else "", True, "<stop>")


@pytest.mark.parametrize("stop", [["world", "lo"], ["lo", "world"]])
def test_earliest_of_several_stop_strings_wins(stop: list[str]) -> None:
    matcher = StopStringMatcher(stop, include_stop_str_in_output=True)
    assert matcher.feed("hello world") == StopResult("hello", True, "lo")


@pytest.mark.parametrize("stop", [["ab", "abc"], ["abc", "ab"]])
@pytest.mark.parametrize("deltas", [["xabc"], ["xa", "bc"], ["x", "a", "b", "c"]])
def test_stop_string_that_is_a_prefix_of_another(stop: list[str], deltas: list[str]) -> None:
    # "ab" is complete before "abc" is, however the text is cut into deltas.
    matcher = StopStringMatcher(stop, include_stop_str_in_output=True)
    emitted, reason = feed_all(matcher, deltas)
    assert "".join(emitted) == "xab" and reason == "ab"


def test_partial_prefix_is_held_back_then_released_by_finish() -> None:
    matcher = StopStringMatcher(["</answer>", "\n\n"], include_stop_str_in_output=False)
    assert matcher.feed("42 </ans") == StopResult("42 ", False, None)
    assert matcher.feed("wers") == StopResult("</answers", False, None)  # not a stop after all
    assert matcher.feed(" ok\n") == StopResult(" ok", False, None)
    assert matcher.held_text == "\n"
    assert matcher.finish() == "\n"
    assert matcher.held_text == "" and not matcher.is_stopped


def test_only_a_possible_stop_prefix_is_held() -> None:
    matcher = StopStringMatcher(["STOP"], include_stop_str_in_output=False)
    assert matcher.max_held_chars == 3
    # "ST" could begin "STOP"; "SX" cannot, so it is emitted at once.
    assert matcher.feed("a ST") == StopResult("a ", False, None)
    assert matcher.feed("X S") == StopResult("STX ", False, None)
    assert matcher.held_text == "S"


def test_empty_stop_list_passes_through() -> None:
    matcher = StopStringMatcher([], include_stop_str_in_output=False)
    for delta in ["a", "", "\ufffd partial", "</s>"]:
        assert matcher.feed(delta) == StopResult(delta, False, None)
    assert matcher.finish() == ""


def test_bad_stop_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        StopStringMatcher(["ok", ""], include_stop_str_in_output=False)
    with pytest.raises(ValueError, match="list of strings"):
        StopStringMatcher("</s>", include_stop_str_in_output=False)


def test_feed_after_stop_is_an_error() -> None:
    matcher = StopStringMatcher(["."], include_stop_str_in_output=False)
    assert matcher.feed("done.").stopped
    with pytest.raises(RuntimeError, match="after stop string"):
        matcher.feed("more")


@pytest.mark.parametrize("include", [False, True])
@pytest.mark.parametrize("seed", range(40))
def test_random_splits_match_the_reference(seed: int, include: bool) -> None:
    rng = random.Random(seed)
    alphabet = "abc é"
    text = "".join(rng.choices(alphabet, k=rng.randrange(0, 40)))
    stop = [
        "".join(rng.choices(alphabet, k=rng.randrange(1, 5))) for _ in range(rng.randrange(1, 4))
    ]
    cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text) + 1, rng.randrange(0, 10))))
    deltas = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]

    matcher = StopStringMatcher(stop, include_stop_str_in_output=include)
    emitted, reason = feed_all(matcher, deltas)

    assert ("".join(emitted), reason) == reference_stop(text, stop, include)
    # Nothing emitted before the last piece can hold a whole stop string.
    assert all(s not in "".join(emitted[:-1]) for s in stop)


def test_with_detokenizer_stops_inside_a_token_stream(tiny_tokenizer: Any) -> None:
    text = "Café 😀 is nice.\nUser: next question"
    output_ids = tiny_tokenizer.encode(text)
    detokenizer = IncrementalDetokenizer(tiny_tokenizer, tiny_tokenizer.encode("Hi"))
    matcher = StopStringMatcher(["\nUser:"], include_stop_str_in_output=False)

    emitted = []
    for token_id in output_ids:
        result = matcher.feed(detokenizer.add_tokens([token_id]))
        emitted.append(result.text_to_emit)
        assert "\ufffd" not in result.text_to_emit
        assert len(matcher.held_text) <= matcher.max_held_chars
        if result.stopped:
            break
    assert "".join(emitted) == "Café 😀 is nice."
    assert matcher.stop_reason == "\nUser:"
