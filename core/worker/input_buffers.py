"""Persistent input buffers: filled on the host each step, copied to the device once.

Every tensor the model and the attention backend read per step lives here at its maximum size,
allocated once, so a captured device graph can replay over the same addresses. A step fills a
prefix of each buffer on the host (NumPy views of pinned memory where the platform pins), then
copies that prefix to the device with non-blocking copies.

    input_ids      int64 [max_num_tokens]
    positions      int64 [max_num_tokens]
    query_start_loc int32 [max_num_reqs + 1]
    seq_lens       int32 [max_num_reqs]
    block_table    int32 [max_num_reqs, max_blocks_per_req]   (0 = the null block)
    slot_mapping   int64 [max_num_tokens]
    logits_indices int64 [max_num_reqs]   rows of the hidden states that sample
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np
import torch

from tenon.spec.attention import AttentionMetadata
from tenon.worker.launched_step import PendingTokens
from tenon.worker.request_state import RequestState


@attrs.frozen(kw_only=True)
class StepInputs:
    input_ids: torch.Tensor  # [num_tokens]
    positions: torch.Tensor  # [num_tokens]
    metadata: AttentionMetadata
    logits_indices: torch.Tensor  # [num_sampling_reqs]
    sampling_request_ids: list[str]  # the requests that sample this step, in row order
    query_ranges: dict[str, tuple[int, int, int]]  # request -> (first row, rows, first position)


class InputBuffers:
    def __init__(
        self,
        *,
        max_num_reqs: int,
        max_num_tokens: int,
        max_blocks_per_req: int,
        block_size: int,
        device: torch.device,
        pin_memory: bool,
    ) -> None:
        self.block_size = block_size
        self.device = device

        def host(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
            return torch.zeros(shape, dtype=dtype, pin_memory=pin_memory)

        self._host = {
            "input_ids": host((max_num_tokens,), torch.int64),
            "positions": host((max_num_tokens,), torch.int64),
            "query_start_loc": host((max_num_reqs + 1,), torch.int32),
            "seq_lens": host((max_num_reqs,), torch.int32),
            "block_table": host((max_num_reqs, max_blocks_per_req), torch.int32),
            "slot_mapping": host((max_num_tokens,), torch.int64),
            "logits_indices": host((max_num_reqs,), torch.int64),
            # rows of input_ids filled on the device from a step in flight, and where from
            "pending_rows": host((max_num_reqs,), torch.int64),
            "pending_sources": host((max_num_reqs,), torch.int64),
        }
        self._np = {name: tensor.numpy() for name, tensor in self._host.items()}
        same_device = device.type == "cpu"
        self._device = {
            name: tensor if same_device else torch.zeros_like(tensor, device=device)
            for name, tensor in self._host.items()
        }
        self._same_device = same_device
        # What each block-table row holds, so a step rewrites only what changed: the state
        # object whose blocks are in the row (None: no request) and how many are written.
        # A resumed request gets a new state object, so its row is rewritten in full.
        self._row_states: list[RequestState | None] = [None] * max_num_reqs
        self._row_num_blocks = [0] * max_num_reqs
        # Recorded after each step's uploads: the next fill rewrites the pinned sources only
        # once the device has read them (a step can be queued behind one still running).
        self._uploaded: torch.Event | None = None

    def _write_table_row(self, index: int, state: RequestState | None) -> None:
        """Row `index` of the block table = `state`'s blocks, then zeros (the null block)."""
        table_row = self._np["block_table"][index]
        written = self._row_num_blocks[index]
        blocks = state.block_ids if state is not None else ()
        if self._row_states[index] is state and written <= len(blocks):
            if len(blocks) > written:  # the request gained blocks since the last step
                table_row[written : len(blocks)] = blocks[written:]
        else:
            table_row[: len(blocks)] = blocks
            if written > len(blocks):
                table_row[len(blocks) : written] = 0
        self._row_states[index] = state
        self._row_num_blocks[index] = len(blocks)

    def _upload(self, name: str, count: int) -> torch.Tensor:
        """The first `count` entries (rows for 2-D) of a buffer, on the device."""
        source = self._host[name][:count]
        target = self._device[name][:count]
        if not self._same_device:
            target.copy_(source, non_blocking=True)
        return target

    def fill(
        self,
        states: Sequence[RequestState],
        num_scheduled_tokens: Sequence[int],
        pad_to_reqs: int | None = None,
        pending: PendingTokens | None = None,
    ) -> StepInputs:
        """Lay out this step's tokens request after request and build the metadata.

        `pad_to_reqs` (decode-only steps replayed from a captured graph): append padding
        requests of one token each up to that many, so the tensors have the captured shapes.
        A padding request has sequence length 0 and an all-null block table, and its token
        writes to slot 0 of the null block; `num_actual_tokens` counts only real tokens.

        `pending`: tokens of the step in flight; a request whose next input is one of them gets
        it copied on the device (its host token list does not have it yet)."""
        if self._uploaded is not None:
            self._uploaded.synchronize()
        arrays = self._np
        pending_rows: list[int] = []
        pending_sources: list[int] = []
        block_size = self.block_size
        num_reqs = len(states)
        row = 0
        max_query_len = 0
        max_seq_len = 0
        sampling_ids: list[str] = []
        query_ranges: dict[str, tuple[int, int, int]] = {}
        arrays["query_start_loc"][0] = 0
        input_ids = arrays["input_ids"]
        positions_array = arrays["positions"]
        slot_mapping = arrays["slot_mapping"]
        seq_lens = arrays["seq_lens"]
        query_start_loc = arrays["query_start_loc"]
        logits_indices = arrays["logits_indices"]
        for index, (state, count) in enumerate(zip(states, num_scheduled_tokens, strict=True)):
            start = state.num_computed_tokens
            stop = start + count
            block_ids = state.block_ids
            if count == 1:  # a decode (or a one-token chunk): plain Python, no arrays
                prompt_len = len(state.prompt_token_ids)
                if start < prompt_len:
                    input_ids[row] = state.prompt_token_ids[start]
                elif start - prompt_len < len(state.output_token_ids):
                    input_ids[row] = state.output_token_ids[start - prompt_len]
                else:  # sampled by the step in flight: copied on the device below
                    assert pending is not None, f"token {start} of {state.request_id} is unknown"
                    input_ids[row] = 0
                    pending_rows.append(row)
                    pending_sources.append(pending.rows[state.request_id])
                positions_array[row] = start
                slot_mapping[row] = block_ids[start // block_size] * block_size + start % block_size
            else:
                input_ids[row : row + count] = state.token_ids(start, stop)
                positions = np.arange(start, stop, dtype=np.int64)
                positions_array[row : row + count] = positions
                blocks = np.asarray(block_ids, dtype=np.int64)
                slot_mapping[row : row + count] = (
                    blocks[positions // block_size] * block_size + positions % block_size
                )
            self._write_table_row(index, state)
            seq_lens[index] = stop
            query_ranges[state.request_id] = (row, count, start)
            row += count
            query_start_loc[index + 1] = row
            if stop >= state.num_tokens:  # the chunk reaches the end: this request samples
                logits_indices[len(sampling_ids)] = row - 1
                sampling_ids.append(state.request_id)
            if count > max_query_len:
                max_query_len = count
            if stop > max_seq_len:
                max_seq_len = stop

        num_actual_tokens = row
        if pad_to_reqs is not None and pad_to_reqs > num_reqs:
            assert max_query_len <= 1, "only decode-only steps are padded"
            pad = slice(num_reqs, pad_to_reqs)
            arrays["input_ids"][pad] = 0
            arrays["positions"][pad] = 0
            arrays["slot_mapping"][pad] = 0
            arrays["seq_lens"][pad] = 0
            for index in range(num_reqs, pad_to_reqs):
                self._write_table_row(index, None)
            arrays["query_start_loc"][num_reqs + 1 : pad_to_reqs + 1] = np.arange(
                row + 1, row + 1 + pad_to_reqs - num_reqs
            )
            row += pad_to_reqs - num_reqs
            num_reqs = pad_to_reqs
            max_query_len = 1
        metadata = AttentionMetadata(
            query_start_loc=self._upload("query_start_loc", num_reqs + 1),
            seq_lens=self._upload("seq_lens", num_reqs),
            block_table=self._upload("block_table", num_reqs),
            slot_mapping=self._upload("slot_mapping", row),
            max_query_len=max_query_len,
            max_seq_len=max_seq_len,
            num_reqs=num_reqs,
            num_actual_tokens=num_actual_tokens,
        )
        input_ids_device = self._upload("input_ids", row)
        if pending_rows:
            assert pending is not None
            count = len(pending_rows)
            arrays["pending_rows"][:count] = pending_rows
            arrays["pending_sources"][:count] = pending_sources
            # input_ids[pending_rows] = sampled[pending_sources], in stream order after the copy
            sources = self._upload("pending_sources", count)
            input_ids_device.index_copy_(
                0, self._upload("pending_rows", count),
                pending.sampled_token_ids.index_select(0, sources).to(input_ids_device.dtype),
            )
        if not self._same_device:
            self._uploaded = torch.Event(device=self.device)
            self._uploaded.record()
        return StepInputs(
            input_ids=input_ids_device,
            positions=self._upload("positions", row),
            metadata=metadata,
            logits_indices=self._upload("logits_indices", len(sampling_ids)),
            sampling_request_ids=sampling_ids,
            query_ranges=query_ranges,
        )
