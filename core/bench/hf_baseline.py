"""The hf-baseline workload: HF transformers `generate()` on the same model shapes as ours.

The model is built from the config with random init on the target device (speed does not
depend on weight values for dense models). Decoding is greedy and `min_new_tokens` equals
`max_new_tokens`, so every sequence makes exactly `output_len` tokens, as `ignore_eos` does for
ours. Prompts are random token ids with no padding.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import attrs
import torch

from tenon.bench.device_memory import free_device_memory


@attrs.frozen(kw_only=True)
class GenerateShape:
    batch_size: int
    input_len: int
    output_len: int

    @classmethod
    def parse(cls, text: str) -> GenerateShape:
        """`BATCHxINPUTxOUTPUT`, for example `64x512x256`."""
        parts = text.lower().split("x")
        if len(parts) != 3 or not all(part.isdigit() and int(part) > 0 for part in parts):
            raise ValueError(f"shape {text!r} must be BATCHxINPUTxOUTPUT with positive integers, like 1x128x256")
        batch_size, input_len, output_len = (int(part) for part in parts)
        return cls(batch_size=batch_size, input_len=input_len, output_len=output_len)

    def __str__(self) -> str:
        return f"{self.batch_size}x{self.input_len}x{self.output_len}"


# BENCHMARKS.md hf-baseline: batch 1 (128 in, 256 out) and batch 64 (512 in, 256 out).
HF_BASELINE_SHAPES = (
    GenerateShape(batch_size=1, input_len=128, output_len=256),
    GenerateShape(batch_size=64, input_len=512, output_len=256),
)


@attrs.frozen(kw_only=True)
class GenerateRate:
    shape: GenerateShape
    samples_s: tuple[float, ...]  # one end-to-end `generate()` call each

    @property
    def mean_s(self) -> float:
        return statistics.fmean(self.samples_s)

    @property
    def output_tokens_per_s(self) -> float:
        """Over the mean end-to-end time, prefill included, as ours is reported."""
        return self.shape.batch_size * self.shape.output_len / self.mean_s


def build_hf_model(config: Any, *, dtype: torch.dtype, device: torch.device) -> Any:
    """`AutoModelForCausalLM.from_config` with its random init run on `device` (fast on a GPU)."""
    from transformers import AutoModelForCausalLM

    from tenon.plugins.loaders.hf_config import to_transformers_config

    with torch.device(device):
        model = AutoModelForCausalLM.from_config(to_transformers_config(config), dtype=dtype)
    return model.eval()


def random_input_ids(shape: GenerateShape, vocab_size: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    # input_ids: [batch_size, input_len]
    return torch.randint(vocab_size, (shape.batch_size, shape.input_len), generator=generator).to(device)


def greedy_generate(model: Any, input_ids: torch.Tensor, output_len: int) -> torch.Tensor:
    """Exactly `output_len` new tokens per row; returns `[batch_size, input_len + output_len]`."""
    with torch.inference_mode():
        return model.generate(
            input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False,
            max_new_tokens=output_len, min_new_tokens=output_len, pad_token_id=0,
        )


def measure_generate_rate(model: Any, shape: GenerateShape, *, num_warmup: int = 1, num_iters: int = 2,
                          warmup_output_len: int = 8, seed: int = 0) -> GenerateRate:
    """Time `num_iters` full `generate()` calls after `num_warmup` short ones (kernels, allocator)."""
    if num_iters < 1:
        raise ValueError(f"num_iters must be at least 1, got {num_iters}")
    device = next(model.parameters()).device
    input_ids = random_input_ids(shape, int(model.config.vocab_size), device, seed)
    for _ in range(num_warmup):
        greedy_generate(model, input_ids, min(warmup_output_len, shape.output_len))
    samples_s = []
    for _ in range(num_iters):
        _synchronize(device)
        start_s = time.perf_counter()
        output_ids = greedy_generate(model, input_ids, shape.output_len)
        _synchronize(device)
        samples_s.append(time.perf_counter() - start_s)
        # output_ids: [batch_size, input_len + output_len]
        if tuple(output_ids.shape) != (shape.batch_size, shape.input_len + shape.output_len):
            raise RuntimeError(f"generate() returned {tuple(output_ids.shape)} for shape {shape}")
    return GenerateRate(shape=shape, samples_s=tuple(samples_s))


def hf_generate_rates(config: Any, shapes: tuple[GenerateShape, ...], *, dtype: torch.dtype,
                      device: torch.device, num_warmup: int = 1, num_iters: int = 2) -> list[GenerateRate]:
    """Build the HF model, time every shape, and free the model before returning."""
    model = build_hf_model(config, dtype=dtype, device=device)
    try:
        return [measure_generate_rate(model, shape, num_warmup=num_warmup, num_iters=num_iters)
                for shape in shapes]
    finally:
        del model
        free_device_memory()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
