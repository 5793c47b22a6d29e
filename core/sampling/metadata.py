"""The per-step batch of sampling parameters, as device tensors, and its builder.

Token ids for the penalties are padded tensors:

    prompt_token_ids  int64 [num_reqs, max_prompt_len]   pad = vocab_size
    output_token_ids  int64 [num_reqs, max_output_len]   pad = vocab_size

Padding with `vocab_size` lets the penalty code scatter into `[num_reqs, vocab_size + 1]` and drop
the last column, with no mask. They are built only when some row needs them (prompt ids: some
row has a repetition penalty; output ids: some row has any penalty), otherwise None.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np
import torch

from tenon.sampling.params import SamplingParams
from tenon.sampling.seeding import make_step_generator


@attrs.frozen
class SamplingRow:
    """One row of the batch: a request's parameters and the tokens it has so far."""

    params: SamplingParams
    prompt_token_ids: Sequence[int]
    output_token_ids: Sequence[int]
    eos_token_id: int | None = None
    # Tokens sampled before this step that are still only on the device (asynchronous
    # scheduling): they count for min_tokens and seeding, not for penalties (rows with
    # penalties wait for them).
    num_pending_output_tokens: int = attrs.field(default=0, kw_only=True)

    @property
    def num_output_tokens(self) -> int:
        return len(self.output_token_ids) + self.num_pending_output_tokens


@attrs.frozen
class SamplingMetadata:
    """Everything the sampler needs for one step, built once per step.

    Rows decoded greedily carry their real temperature (below GREEDY_TEMPERATURE_EPS), top_k 1,
    top_p 1 and min_p 0: their token is the argmax whatever these stages do. The `all_*`/`no_*`
    flags let the sampler skip whole stages; `no_top_k` etc. look only at randomly sampled rows.
    """

    # All [num_reqs], on the sampling device.
    temperature: torch.Tensor  # float32
    top_k: torch.Tensor  # int32, 0 = off (also when top_k >= vocab_size); greedy rows 1
    top_p: torch.Tensor  # float32, 1.0 = off
    min_p: torch.Tensor  # float32, 0.0 = off
    presence_penalties: torch.Tensor  # float32
    frequency_penalties: torch.Tensor  # float32
    repetition_penalties: torch.Tensor  # float32
    # Row index -> that row's generator for this step; only seeded, randomly sampled rows.
    generators: dict[int, torch.Generator]
    # For unseeded random rows; None means torch's default generator for the device.
    shared_generator: torch.Generator | None
    all_greedy: bool
    all_random: bool
    no_penalties: bool
    no_top_k: bool
    no_top_p: bool
    no_min_p: bool
    # Every row has top_k >= 1, so top-p may look at only the max_top_k best tokens.
    all_top_k: bool
    # Largest top-k among random rows that use it, known on the host so top-k needs no sync.
    max_top_k: int | None
    # Largest `logprobs` asked for by any row; None when no row wants logprobs.
    max_num_logprobs: int | None
    prompt_token_ids: torch.Tensor | None  # int64 [num_reqs, max_prompt_len], pad = vocab_size
    output_token_ids: torch.Tensor | None  # int64 [num_reqs, max_output_len], pad = vocab_size
    # (row, token ids) pairs whose logits are masked: EOS and stop tokens before min_tokens.
    min_tokens_masks: tuple[tuple[int, tuple[int, ...]], ...] = ()

    @property
    def num_reqs(self) -> int:
        return int(self.temperature.shape[0])


def _pad_token_ids(
    token_id_lists: Sequence[Sequence[int]], pad_token_id: int, device: torch.device
) -> torch.Tensor:
    max_len = max((len(token_ids) for token_ids in token_id_lists), default=0)
    # Filled on the host row by row through numpy (about 5x faster than torch.tensor on nested
    # lists), then copied once.
    # padded: [num_reqs, max_len]
    padded = np.full((len(token_id_lists), max_len), pad_token_id, dtype=np.int64)
    for row_index, token_ids in enumerate(token_id_lists):
        padded[row_index, : len(token_ids)] = token_ids
    return torch.from_numpy(padded).to(device)


def build_sampling_metadata(
    rows: Sequence[SamplingRow],
    vocab_size: int,
    device: torch.device | str,
    shared_generator: torch.Generator | None = None,
) -> SamplingMetadata:
    """Gather `rows` into one `SamplingMetadata` on `device`.

    A seeded row's generator is seeded from (seed, len(output_token_ids)), so the draw for a
    given output position does not depend on the batch or on preemption.
    """
    if not rows:
        raise ValueError("build_sampling_metadata needs at least one row, got an empty batch")
    device = torch.device(device)
    temperatures: list[float] = []
    top_ks: list[int] = []
    random_top_ks: list[int] = []
    top_ps: list[float] = []
    min_ps: list[float] = []
    presences: list[float] = []
    frequencies: list[float] = []
    repetitions: list[float] = []
    generators: dict[int, torch.Generator] = {}
    num_greedy = 0
    max_num_logprobs: int | None = None
    min_tokens_masks: list[tuple[int, tuple[int, ...]]] = []
    for row_index, row in enumerate(rows):
        params = row.params
        temperatures.append(params.temperature)
        presences.append(params.presence_penalty)
        frequencies.append(params.frequency_penalty)
        repetitions.append(params.repetition_penalty)
        if params.logprobs is not None:
            max_num_logprobs = max(max_num_logprobs or 0, params.logprobs)
        if row.num_output_tokens < params.min_tokens:
            banned = tuple(params.stop_token_ids) + (
                () if row.eos_token_id is None or params.ignore_eos else (row.eos_token_id,))
            if banned:
                min_tokens_masks.append((row_index, banned))
        if params.is_greedy:
            num_greedy += 1
            top_ks.append(1)
            top_ps.append(1.0)
            min_ps.append(0.0)
            continue
        top_k = params.top_k if params.top_k < vocab_size else 0
        top_ks.append(top_k)
        random_top_ks.append(top_k)
        top_ps.append(params.top_p)
        min_ps.append(params.min_p)
        if params.seed is not None:
            generators[row_index] = make_step_generator(
                params.seed, row.num_output_tokens, device
            )

    needs_repetition = any(repetition != 1.0 for repetition in repetitions)
    no_penalties = not needs_repetition and all(
        presence == 0.0 and frequency == 0.0
        for presence, frequency in zip(presences, frequencies, strict=True)
    )
    prompt_token_ids = None
    output_token_ids = None
    if needs_repetition:
        prompt_token_ids = _pad_token_ids([row.prompt_token_ids for row in rows], vocab_size, device)
    if not no_penalties:
        output_token_ids = _pad_token_ids([row.output_token_ids for row in rows], vocab_size, device)

    max_top_k = max(random_top_ks, default=0)
    # One host-to-device copy for the six float columns and one for top-k, from pinned memory
    # and asynchronous on accelerators: a plain torch.tensor(..., device=cuda) per column would
    # wait for the queued forward pass seven times each step.
    pin = device.type != "cpu"
    floats = torch.tensor([temperatures, top_ps, min_ps, presences, frequencies, repetitions],
                          dtype=torch.float32, pin_memory=pin).to(device, non_blocking=pin)
    top_k_tensor = torch.tensor(top_ks, dtype=torch.int32, pin_memory=pin).to(device, non_blocking=pin)
    return SamplingMetadata(
        temperature=floats[0],
        top_k=top_k_tensor,
        top_p=floats[1],
        min_p=floats[2],
        presence_penalties=floats[3],
        frequency_penalties=floats[4],
        repetition_penalties=floats[5],
        generators=generators,
        shared_generator=shared_generator,
        all_greedy=num_greedy == len(rows),
        all_random=num_greedy == 0,
        no_penalties=no_penalties,
        no_top_k=max_top_k == 0,
        no_top_p=all(top_p == 1.0 for top_p in top_ps),
        no_min_p=all(min_p == 0.0 for min_p in min_ps),
        all_top_k=all(top_k > 0 for top_k in top_ks),
        max_top_k=max_top_k if max_top_k > 0 else None,
        max_num_logprobs=max_num_logprobs,
        min_tokens_masks=tuple(min_tokens_masks),
        prompt_token_ids=prompt_token_ids,
        output_token_ids=output_token_ids,
    )
