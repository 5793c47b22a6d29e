"""Incremental detokenization: token ids in, text deltas out, a few tokens of work per step.

Decoding the whole output again after every token costs O(n) per step. Instead two token
offsets bound a small window (the technique of vLLM and TGI):

    token_ids:  ... | prefix_offset ........ read_offset ........ end |
                      \\__ prefix_text __/
                      \\___________________ new_text _____________/

`prefix_text` was already emitted; the delta is `new_text[len(prefix_text):]`. The window
starts a few tokens back because many decoders look at neighbouring tokens (SentencePiece drops
the leading space of the first token decoded; WordPiece glues `##` pieces), so decoding only
the new tokens would give the wrong text.

A multi-byte UTF-8 character split across tokens decodes to U+FFFD until its last byte arrives,
so while `new_text` ends in U+FFFD nothing is emitted and the offsets stay put; the next token
completes the character. `finish()` flushes what is still held when generation ends.

The concatenated deltas equal `tokenizer.decode(output_ids, skip_special_tokens=...,
clean_up_tokenization_spaces=False)`, for byte-level BPE tokenizers exactly; for SentencePiece
ones the prompt supplies the context, so the first output token keeps its leading space.
"""

from collections.abc import Callable, Sequence
from typing import Any

# How many prompt tokens seed the first window (as in vLLM): enough for any decoder's lookbehind.
INITIAL_CONTEXT_TOKENS = 5
REPLACEMENT_CHAR = "\ufffd"


def _make_decode(
    tokenizer: Any, skip_special_tokens: bool, spaces_between_special_tokens: bool
) -> Callable[[list[int]], str]:
    """The cheapest decode that matches `tokenizer.decode` without clean-up of spaces."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # A fast tokenizer's decode is the Rust decode plus optional clean-up, which we turn off;
        # calling the Rust one directly skips the Python wrapper on the hot path.
        def decode_fast(token_ids: list[int]) -> str:
            text: str = backend.decode(token_ids, skip_special_tokens=skip_special_tokens)
            return text

        return decode_fast

    def decode_python(token_ids: list[int]) -> str:
        text: str = tokenizer.decode(
            token_ids,
            skip_special_tokens=skip_special_tokens,
            spaces_between_special_tokens=spaces_between_special_tokens,
            clean_up_tokenization_spaces=False,
        )
        return text

    return decode_python


def special_token_ids(tokenizer: Any) -> frozenset[int]:
    """Ids that `tokenizer.decode(..., skip_special_tokens=True)` drops."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # The Rust decode skips exactly the added tokens marked special.
        added_tokens = backend.get_added_tokens_decoder()
        return frozenset(i for i, token in added_tokens.items() if token.special)
    token_ids = set(getattr(tokenizer, "all_special_ids", ()))
    added_tokens = getattr(tokenizer, "added_tokens_decoder", {})
    token_ids.update(i for i, token in added_tokens.items() if getattr(token, "special", False))
    return frozenset(token_ids)


class IncrementalDetokenizer:
    """Turns one request's output token ids into text deltas, never half a character.

    Not thread-safe; one instance per request. `add_tokens` returns the new text and
    `output_text` holds all text emitted so far. Call `finish()` once generation ends.
    """

    def __init__(
        self,
        tokenizer: Any,
        prompt_token_ids: Sequence[int],
        *,
        skip_special_tokens: bool = True,
        spaces_between_special_tokens: bool = True,
    ) -> None:
        self.skip_special_tokens = skip_special_tokens
        self._decode = _make_decode(tokenizer, skip_special_tokens, spaces_between_special_tokens)
        # Dropping special ids up front keeps them out of the window; decode would skip them too.
        self._skipped_token_ids = (
            special_token_ids(tokenizer) if skip_special_tokens else frozenset()
        )
        context_token_ids = self._without_skipped(prompt_token_ids)[-INITIAL_CONTEXT_TOKENS:]
        self._token_ids: list[int] = context_token_ids
        self._prefix_offset = 0
        self._read_offset = len(context_token_ids)
        self._prefix_text = self._decode(context_token_ids) if context_token_ids else ""
        self._num_output_tokens = 0
        self.output_text = ""

    @property
    def num_output_tokens(self) -> int:
        """Output tokens added so far, skipped special tokens included."""
        return self._num_output_tokens

    @property
    def num_held_tokens(self) -> int:
        """Tokens whose text is held back (an unfinished UTF-8 character, usually)."""
        return len(self._token_ids) - self._read_offset

    def add_tokens(self, new_token_ids: Sequence[int]) -> str:
        """Append output tokens; return the text they complete (possibly "")."""
        self._num_output_tokens += len(new_token_ids)
        kept_token_ids = self._without_skipped(new_token_ids)
        if not kept_token_ids:
            return ""
        self._token_ids.extend(kept_token_ids)
        new_text = self._decode(self._token_ids[self._prefix_offset :])
        if len(new_text) <= len(self._prefix_text) or new_text.endswith(REPLACEMENT_CHAR):
            # An unfinished character (or a token with no text yet): wait for the next one.
            return ""
        delta = new_text[len(self._prefix_text) :]
        # Slide the window: the tokens just read become the prefix of the next step. Their text
        # is decoded afresh, not sliced from new_text: without the older tokens in front a
        # decoder may render their first token differently (a SentencePiece leading space).
        self._prefix_offset = self._read_offset
        self._read_offset = len(self._token_ids)
        self._prefix_text = self._decode(self._token_ids[self._prefix_offset : self._read_offset])
        self._drop_consumed_tokens()
        self.output_text += delta
        return delta

    def finish(self) -> str:
        """Flush text still held back at the end of generation (it may contain U+FFFD)."""
        if self._read_offset == len(self._token_ids):
            return ""
        new_text = self._decode(self._token_ids[self._prefix_offset :])
        delta = new_text[len(self._prefix_text) :]
        self._prefix_text = new_text
        self._read_offset = len(self._token_ids)
        self.output_text += delta
        return delta

    def _drop_consumed_tokens(self) -> None:
        # Tokens before the prefix offset are never decoded again; forgetting them keeps memory
        # bounded by the window instead of the whole output.
        if self._prefix_offset > 0:
            del self._token_ids[: self._prefix_offset]
            self._read_offset -= self._prefix_offset
            self._prefix_offset = 0

    def _without_skipped(self, token_ids: Sequence[int]) -> list[int]:
        if not self._skipped_token_ids:
            return list(token_ids)
        return [i for i in token_ids if i not in self._skipped_token_ids]
