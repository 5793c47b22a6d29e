"""Stop strings on streamed text: find them across token boundaries, never emit half of one.

Text arrives in deltas (from `IncrementalDetokenizer.add_tokens`), and a stop string may start
in one delta and end two deltas later. The matcher keeps back the shortest tail of the text
that could still grow into a stop string (at most `max(len(s) for s in stop) - 1` characters)
and emits everything before it:

    emitted ............ | held ("\\nUs") |   <- a prefix of the stop string "\\nUser:"

Which stop string wins: the one that is complete first in the text; among those completing at
the same character, the one that starts first (the longer). This does not depend on how the
text was cut into deltas: with stop strings "ab" and "abc", "ab" stops the text "abc" whether it
comes as one delta or three.
"""

from collections.abc import Sequence

import attrs


@attrs.frozen
class StopResult:
    """What one `feed` lets through.

    text_to_emit: text safe to show now (the delta minus any held-back tail, truncated at the
        stop string when one matched).
    stopped: a stop string matched; generation should end and nothing more is emitted.
    stop_reason: the stop string that matched, None while not stopped.
    """

    text_to_emit: str
    stopped: bool
    stop_reason: str | None = None


class StopStringMatcher:
    """Per-request stop-string search over streamed text deltas. Not thread-safe.

    Feed each delta with `feed`; when generation ends for another reason (eos, length), call
    `finish` to release the held-back tail. With no stop strings every delta passes through.
    """

    def __init__(self, stop: Sequence[str], include_stop_str_in_output: bool = False) -> None:
        if isinstance(stop, str):
            raise ValueError(f"stop must be a list of strings, not the string {stop!r}; wrap it")
        if any(not s for s in stop):
            raise ValueError(f"stop strings must be non-empty, got {list(stop)!r}")
        # Order kept for a stable tie-break; duplicates dropped.
        self.stop: tuple[str, ...] = tuple(dict.fromkeys(stop))
        self.include_stop_str_in_output = include_stop_str_in_output
        self.max_held_chars = max((len(s) for s in self.stop), default=1) - 1
        self.stop_reason: str | None = None
        self._held_text = ""

    @property
    def is_stopped(self) -> bool:
        return self.stop_reason is not None

    @property
    def held_text(self) -> str:
        """Text received but not yet emitted because it may begin a stop string."""
        return self._held_text

    def feed(self, delta: str) -> StopResult:
        """Take the next text delta; return what may be emitted and whether a stop matched."""
        if self.stop_reason is not None:
            raise RuntimeError(
                f"feed() called after stop string {self.stop_reason!r} ended the request"
            )
        if not self.stop:
            return StopResult(delta, False)
        text = self._held_text + delta
        match = self._first_completed_match(text)
        if match is not None:
            start, stop_str = match
            end = start + len(stop_str) if self.include_stop_str_in_output else start
            self._held_text = ""
            self.stop_reason = stop_str
            return StopResult(text[:end], True, stop_str)
        num_held_chars = self._partial_match_length(text)
        cut = len(text) - num_held_chars
        self._held_text = text[cut:]
        return StopResult(text[:cut], False)

    def finish(self) -> str:
        """Release the held-back tail when generation ends without a stop string."""
        tail, self._held_text = self._held_text, ""
        return tail

    def _first_completed_match(self, text: str) -> tuple[int, str] | None:
        # The held text had no complete stop string, so any match ends inside the new delta;
        # `find` gives each stop string's earliest start, which is also its earliest end.
        best: tuple[int, int, str] | None = None  # (end, start, stop string)
        for stop_str in self.stop:
            start = text.find(stop_str)
            if start == -1:
                continue
            candidate = (start + len(stop_str), start, stop_str)
            if best is None or candidate[:2] < best[:2]:
                best = candidate
        return None if best is None else (best[1], best[2])

    def _partial_match_length(self, text: str) -> int:
        """Length of the longest tail of `text` that is a proper prefix of a stop string."""
        longest = 0
        for stop_str in self.stop:
            for length in range(min(len(stop_str) - 1, len(text)), longest, -1):
                if text.endswith(stop_str[:length]):
                    longest = length
                    break
        return longest
