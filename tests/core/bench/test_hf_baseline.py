"""The HF generate() baseline on a tiny config, on the CPU."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
import torch
import transformers

from tenon.bench.hf_baseline import (
    HF_BASELINE_SHAPES,
    GenerateShape,
    build_hf_model,
    greedy_generate,
    hf_generate_rates,
    random_input_ids,
)

CPU = torch.device("cpu")


def test_shape_parses_batch_input_output() -> None:
    assert GenerateShape.parse("64x512x256") == GenerateShape(batch_size=64, input_len=512, output_len=256)
    assert str(GenerateShape.parse("1X128x256")) == "1x128x256"
    assert [str(shape) for shape in HF_BASELINE_SHAPES] == ["1x128x256", "64x512x256"]
    for bad in ("64x512", "0x1x1", "ax1x1", "1x1x-2"):
        with pytest.raises(ValueError, match="BATCHxINPUTxOUTPUT"):
            GenerateShape.parse(bad)


def test_generate_never_stops_early_at_eos(tiny_dummy_model_dir: Path) -> None:
    config = transformers.AutoConfig.from_pretrained(tiny_dummy_model_dir)
    model = build_hf_model(config, dtype=torch.float32, device=CPU)
    shape = GenerateShape(batch_size=2, input_len=7, output_len=6)
    input_ids = random_input_ids(shape, config.vocab_size, CPU, seed=3)
    # input_ids: [2, 7], drawn from the vocabulary, the same for the same seed
    assert input_ids.shape == (2, 7) and int(input_ids.max()) < config.vocab_size
    assert torch.equal(input_ids, random_input_ids(shape, config.vocab_size, CPU, seed=3))
    first = greedy_generate(model, input_ids, 1)[:, -1]
    # Make the first greedy token of row 0 the end of sequence: generate must go on regardless
    # (min_new_tokens masks the EOS logit, so row 0 takes its runner-up; row 1 is unchanged).
    model.generation_config.eos_token_id = int(first[0])
    output_ids = greedy_generate(model, input_ids, shape.output_len)
    assert output_ids.shape == (2, 7 + 6)
    assert torch.equal(output_ids[:, :7], input_ids)
    assert int(output_ids[0, 7]) != int(first[0]) and int(output_ids[1, 7]) == int(first[1])
    assert int(first[0]) not in output_ids[0, 7:].tolist()


def test_rates_per_shape_in_float32_and_bfloat16(tiny_dummy_model_dir: Path) -> None:
    config = transformers.AutoConfig.from_pretrained(tiny_dummy_model_dir)
    shapes = (GenerateShape(batch_size=1, input_len=8, output_len=5),
              GenerateShape(batch_size=3, input_len=4, output_len=4))
    for dtype in (torch.float32, torch.bfloat16):
        rates = hf_generate_rates(config, shapes, dtype=dtype, device=CPU, num_warmup=1, num_iters=2)
        assert [rate.shape for rate in rates] == list(shapes)
        for rate in rates:
            assert len(rate.samples_s) == 2 and min(rate.samples_s) > 0.0
            expected = rate.shape.batch_size * rate.shape.output_len / statistics.fmean(rate.samples_s)
            assert rate.output_tokens_per_s == pytest.approx(expected)
    assert next(build_hf_model(config, dtype=torch.bfloat16, device=CPU).parameters()).dtype == torch.bfloat16
