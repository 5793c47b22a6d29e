import time
from pathlib import Path

from transformers import AutoTokenizer

from tests.helpers.tiny_tokenizer import make_tiny_tokenizer


def test_builds_offline_fast_and_loads_with_auto_tokenizer(tmp_path: Path) -> None:
    start_s = time.perf_counter()
    save_dir = make_tiny_tokenizer(tmp_path / "tok")
    assert time.perf_counter() - start_s < 2.0
    assert save_dir == tmp_path / "tok"
    assert (save_dir / "tokenizer.json").is_file()

    tokenizer = AutoTokenizer.from_pretrained(save_dir)

    assert len(tokenizer) == 320
    assert tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [
        0,
        1,
        2,
    ]
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (0, 0, 0)
    assert sorted(tokenizer.all_special_ids) == [0, 1, 2]


def test_chat_template_is_chatml(tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(make_tiny_tokenizer(tmp_path))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]

    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    no_generation_prompt = tokenizer.apply_chat_template(messages, tokenize=False)

    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert no_generation_prompt == prompt.removesuffix("<|im_start|>assistant\n")
    token_ids = tokenizer.encode(prompt)
    assert token_ids[0] == 1 and token_ids.count(1) == 3 and token_ids.count(2) == 2


def test_round_trips_text_and_splits_multibyte_characters(tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(make_tiny_tokenizer(tmp_path))
    text = "Hello café 日本語 😀 🇫🇷"

    token_ids = tokenizer.encode(text)

    assert tokenizer.decode(token_ids) == text
    assert tokenizer.encode("😀") == tokenizer.encode("😀", add_special_tokens=False)  # no bos
    # The 4 bytes of an emoji: the lead bytes F0 9F that all emoji share merged, the rest not.
    assert len(tokenizer.encode("😀")) == 3
    assert "\ufffd" in tokenizer.decode(tokenizer.encode("日本語")[:1])


def test_same_tokenizer_every_time(tmp_path: Path) -> None:
    first = make_tiny_tokenizer(tmp_path / "a") / "tokenizer.json"
    second = make_tiny_tokenizer(tmp_path / "b") / "tokenizer.json"
    assert first.read_text() == second.read_text()


def test_small_vocab_sizes(tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(make_tiny_tokenizer(tmp_path, vocab_size=300))
    assert len(tokenizer) == 300
