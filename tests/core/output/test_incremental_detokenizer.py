import random
from collections.abc import Sequence
from typing import Any

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from tenon.output.detokenizer import IncrementalDetokenizer, special_token_ids

NON_ASCII_TEXTS = (
    "Hello 😀 world",
    "日本語のテキスト and 中文文本",
    "Café naïve résumé façade",
    "👍🏽❤️🇫🇷🚀🎉",
    "Привет, мир! Γειά σου κόσμε! 한국어",
    "mixed: a😀b日c é 🇫🇷 end",
)


def stream(detokenizer: IncrementalDetokenizer, token_ids: Sequence[int]) -> list[str]:
    """Feed tokens one at a time; return every delta, the final flush last."""
    deltas = [detokenizer.add_tokens([token_id]) for token_id in token_ids]
    deltas.append(detokenizer.finish())
    return deltas


@pytest.mark.parametrize("skip_special_tokens", [True, False])
@pytest.mark.parametrize("seed", range(8))
def test_random_token_ids_reproduce_decode(
    tiny_tokenizer: Any, seed: int, skip_special_tokens: bool
) -> None:
    rng = random.Random(seed)
    vocab_size = len(tiny_tokenizer)
    prompt_ids = [rng.randrange(vocab_size) for _ in range(rng.randrange(0, 12))]
    output_ids = [rng.randrange(vocab_size) for _ in range(rng.randrange(1, 80))]
    # Special tokens sprinkled in, so skipping them is exercised at every position.
    for _ in range(4):
        output_ids.insert(rng.randrange(len(output_ids) + 1), rng.choice([0, 1, 2]))
    # A prompt ending mid-character is out of scope (prompts come from text): end on a newline.
    prompt_ids += tiny_tokenizer.encode("\n")

    detokenizer = IncrementalDetokenizer(
        tiny_tokenizer, prompt_ids, skip_special_tokens=skip_special_tokens
    )
    deltas = stream(detokenizer, output_ids)

    expected = tiny_tokenizer.decode(output_ids, skip_special_tokens=skip_special_tokens)
    assert "".join(deltas) == expected
    assert detokenizer.output_text == expected
    assert detokenizer.num_output_tokens == len(output_ids)


@pytest.mark.parametrize("text", NON_ASCII_TEXTS)
def test_non_ascii_text_streams_whole_characters(tiny_tokenizer: Any, text: str) -> None:
    output_ids = tiny_tokenizer.encode(text)
    prompt_ids = tiny_tokenizer.encode("Say something:")
    detokenizer = IncrementalDetokenizer(tiny_tokenizer, prompt_ids)

    deltas = stream(detokenizer, output_ids)

    assert "".join(deltas) == text == tiny_tokenizer.decode(output_ids)
    assert all("\ufffd" not in delta for delta in deltas)
    assert deltas[-1] == ""  # nothing left to flush for valid text
    # Characters span several tokens here, so some steps must have held their bytes back.
    assert len(output_ids) > len([d for d in deltas if d])


def test_each_step_emits_exactly_the_completed_characters(tiny_tokenizer: Any) -> None:
    text = "a😀b"
    output_ids = tiny_tokenizer.encode(text)
    pieces = [tiny_tokenizer.convert_ids_to_tokens(i) for i in output_ids]
    detokenizer = IncrementalDetokenizer(tiny_tokenizer, [])

    deltas = stream(detokenizer, output_ids)

    # 'a' and 'b' are single tokens; the emoji's 4 bytes come in the tokens between them and
    # appear all at once, on the token that carries its last byte.
    assert pieces[0] == "a" and pieces[-1] == "b" and len(pieces) >= 3
    assert deltas == ["a"] + [""] * (len(output_ids) - 3) + ["😀", "b", ""]


@pytest.mark.parametrize("skip_special_tokens", [True, False])
def test_special_tokens_skipped_or_kept(tiny_tokenizer: Any, skip_special_tokens: bool) -> None:
    prompt_ids = tiny_tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    prompt_ids = tiny_tokenizer.encode(prompt_ids)
    output_ids = tiny_tokenizer.encode("Hello 😀<|im_end|>\n<|im_start|>user") + [0]

    detokenizer = IncrementalDetokenizer(
        tiny_tokenizer, prompt_ids, skip_special_tokens=skip_special_tokens
    )
    text = "".join(stream(detokenizer, output_ids))

    if skip_special_tokens:
        assert text == "Hello 😀\nuser"
    else:
        assert text == "Hello 😀<|im_end|>\n<|im_start|>user<|endoftext|>"


def test_special_token_ids_of_tiny_tokenizer(tiny_tokenizer: Any) -> None:
    assert special_token_ids(tiny_tokenizer) == frozenset({0, 1, 2})
    assert special_token_ids(_DecodeOnlyTokenizer(tiny_tokenizer)) == frozenset({0, 1, 2})


@pytest.mark.parametrize("seed", range(4))
def test_chunks_of_tokens_give_the_same_text(tiny_tokenizer: Any, seed: int) -> None:
    rng = random.Random(seed)
    output_ids = tiny_tokenizer.encode(" ".join(rng.choices(NON_ASCII_TEXTS, k=3)))
    detokenizer = IncrementalDetokenizer(tiny_tokenizer, [])
    deltas = []
    start = 0
    while start < len(output_ids):
        size = rng.randrange(0, 5)  # zero-token steps happen (a step that produced nothing)
        deltas.append(detokenizer.add_tokens(output_ids[start : start + size]))
        start += size
    deltas.append(detokenizer.finish())
    assert "".join(deltas) == tiny_tokenizer.decode(output_ids)
    assert all("\ufffd" not in delta for delta in deltas)


class _CountingBackend:
    """A backend tokenizer that records how many ids each decode call gets."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self.decoded_lengths: list[int] = []

    def get_added_tokens_decoder(self) -> dict[int, Any]:
        added_tokens: dict[int, Any] = self._backend.get_added_tokens_decoder()
        return added_tokens

    def decode(self, token_ids: list[int], skip_special_tokens: bool) -> str:
        self.decoded_lengths.append(len(token_ids))
        text: str = self._backend.decode(token_ids, skip_special_tokens=skip_special_tokens)
        return text


class _CountingTokenizer:
    def __init__(self, tokenizer: Any) -> None:
        self.backend_tokenizer = _CountingBackend(tokenizer.backend_tokenizer)


def test_each_step_decodes_a_bounded_window(tiny_tokenizer: Any) -> None:
    text = " ".join(NON_ASCII_TEXTS * 20)
    output_ids = tiny_tokenizer.encode(text)
    counting = _CountingTokenizer(tiny_tokenizer)
    detokenizer = IncrementalDetokenizer(counting, tiny_tokenizer.encode("prompt text here"))

    assert "".join(stream(detokenizer, output_ids)) == text
    assert len(output_ids) > 1000
    # The window holds the previous step's tokens plus the unfinished character's (an emoji
    # with modifiers is at most a handful of tokens), never the whole output.
    assert max(counting.backend_tokenizer.decoded_lengths) <= 12
    assert len(counting.backend_tokenizer.decoded_lengths) <= 2 * len(output_ids) + 1


class _DecodeOnlyTokenizer:
    """A tokenizer without a Rust backend: the detokenizer must fall back to `decode`."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self.all_special_ids = tokenizer.all_special_ids
        self.calls: list[dict[str, Any]] = []

    def decode(self, token_ids: list[int], **kwargs: Any) -> str:
        self.calls.append(dict(kwargs))
        # The fast tokenizer's decode ignores this argument; a slow tokenizer would honour it.
        kwargs.pop("spaces_between_special_tokens")
        text: str = self._tokenizer.decode(token_ids, **kwargs)
        return text


def test_tokenizer_without_backend_uses_decode(tiny_tokenizer: Any) -> None:
    output_ids = tiny_tokenizer.encode("Café 😀 日本<|im_end|>")
    wrapper = _DecodeOnlyTokenizer(tiny_tokenizer)
    detokenizer = IncrementalDetokenizer(wrapper, [], spaces_between_special_tokens=False)

    assert "".join(stream(detokenizer, output_ids)) == "Café 😀 日本"
    assert wrapper.calls[0] == {
        "skip_special_tokens": True,
        "spaces_between_special_tokens": False,
        "clean_up_tokenization_spaces": False,
    }


def _metaspace_tokenizer() -> PreTrainedTokenizerFast:
    """SentencePiece-style: '▁' marks a space, and decode drops the first token's leading one."""
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=60, special_tokens=["<unk>"], show_progress=False)
    backend.train_from_iterator(["hello world", "hello there world"] * 4, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")


def test_prompt_context_keeps_leading_space_of_sentencepiece_tokens() -> None:
    tokenizer = _metaspace_tokenizer()
    prompt_ids = tokenizer.encode("hello")
    output_ids = tokenizer.encode("world there")
    # Alone, the output decodes without its leading space; after the prompt it has one.
    assert tokenizer.decode(output_ids) == "world there"
    assert tokenizer.decode(prompt_ids + output_ids) == "hello world there"

    with_prompt = IncrementalDetokenizer(tokenizer, prompt_ids)
    without_prompt = IncrementalDetokenizer(tokenizer, [])

    assert "".join(stream(with_prompt, output_ids)) == " world there"
    assert "".join(stream(without_prompt, output_ids)) == "world there"
