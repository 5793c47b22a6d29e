"""The word-level benchmark tokenizer: every id round-trips, prompts have exact lengths, and
every sampled id streams visible text."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tenon.bench.word_tokenizer import main


def test_every_id_round_trips_and_streams_text(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from tenon.bench.serve_workload import random_prompts
    from tenon.output.detokenizer import IncrementalDetokenizer

    assert main([str(tmp_path), "--vocab-size", "300"]) == 0
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert (len(tokenizer), tokenizer.all_special_ids, tokenizer.eos_token_id) == (300, [0], None)
    ids = np.random.default_rng(0).integers(1, 300, size=50).tolist()
    text = tokenizer.decode(ids)
    assert text == " ".join(f"t{token_id}" for token_id in ids)
    assert tokenizer.encode(text, add_special_tokens=False) == ids
    assert [prompt.num_tokens for prompt in random_prompts(tokenizer, num_prompts=3, input_len_tokens=64,
                                                           seed=1)] == [64, 64, 64]
    detokenizer = IncrementalDetokenizer(tokenizer, [5, 6, 7])
    assert [detokenizer.add_tokens([token_id]) for token_id in (299, 1, 42)] == [" t299", " t1", " t42"]


def test_vocab_size_from_a_model_config(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    config_dir = Path(__file__).resolve().parents[3] / "benchmarks" / "configs" / "llama-3.1-8b"
    assert main([str(tmp_path), "--model-config", str(config_dir)]) == 0
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert len(tokenizer) == 128256
    assert tokenizer.decode([128255]) == "t128255"
