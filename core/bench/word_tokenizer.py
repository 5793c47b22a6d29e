"""A word-level tokenizer covering a model's whole vocabulary, for serving benchmarks of models
with random weights (`--load-format dummy`), which come without a tokenizer.

Id 0 is `<unk>`; every other id `i` is the word `t<i>`. Decoding joins words with spaces and
encoding splits on whitespace, so random ids decode to a text that encodes back to exactly as
many tokens, and every id a random-weight model samples decodes to visible text. A real
tokenizer with a smaller vocabulary (the default model's has 49,152 ids, llama-3.1-8b samples
from 128,256) decodes the ids past its end to nothing, so the client would see fewer chunks than
tokens, and time to first token would wait for the first id that happens to be in range.

    python -m tenon.bench.word_tokenizer DIR --vocab-size N     (or --model-config MODEL_DIR)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

UNKNOWN_TOKEN = "<unk>"


def word(token_id: int) -> str:
    return f"t{token_id}"


def make_word_tokenizer(save_dir: Path, vocab_size: int) -> Path:
    """Save the tokenizer so `AutoTokenizer.from_pretrained(save_dir)` loads it; returns `save_dir`."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 2:
        raise ValueError(f"the vocabulary needs at least 2 ids (<unk> and a word), got {vocab_size}")
    vocab = {UNKNOWN_TOKEN: 0, **{word(token_id): token_id for token_id in range(1, vocab_size)}}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNKNOWN_TOKEN))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # No decoder: the tokenizers library joins decoded words with single spaces.
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token=UNKNOWN_TOKEN).save_pretrained(save_dir)
    return save_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("save_dir", type=Path)
    sizes = parser.add_mutually_exclusive_group(required=True)
    sizes.add_argument("--vocab-size", type=int)
    sizes.add_argument("--model-config", type=Path, help="a model directory: its config.json's vocab_size")
    args = parser.parse_args(argv)
    vocab_size = args.vocab_size
    if vocab_size is None:
        vocab_size = int(json.loads((args.model_config / "config.json").read_text())["vocab_size"])
    make_word_tokenizer(args.save_dir, vocab_size)
    print(f"word tokenizer of {vocab_size} ids -> {args.save_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
