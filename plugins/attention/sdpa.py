"""Paged attention through `torch.nn.functional.scaled_dot_product_attention`, one call per batch.

The reference backend loops over requests in every layer; this one plans the step once in
`prepare` and then, per layer, gathers every request's cached K/V through the block table and
makes one SDPA call over a padded batch:

    query rows (ragged, request after request)     padded query  [B, H, max_q, D]
    r0: t0 t1 t2 | r1: t3 | r2: t4 t5        ->    r0: t0 t1 t2
                                                   r1: t3 .  .      (. = padding row)
                                                   r2: t4 t5 .
    keys: kv_layer[block_table[:, :num_blocks], K] -> [B, num_blocks * block_size, Hkv, D]
    mask [B, 1, max_q, S]: key p is visible to row j of request b when
        p <= seq_len[b] - query_len[b] + j   (causal)   and   p > that - sliding_window

Padding rows see key 0 only (never an all-False row, which SDPA turns into NaN); their output
is dropped. When every row of a group sees exactly keys `0 .. seq_len - 1` (decodes of equally
long sequences, the one-stream case), the keys are sliced to `seq_len` and no mask is built.
When the padded form grows past `max_pairs_per_call` query-key pairs (long prefills) or wastes
most of its rows (a prefill beside decodes), consecutive requests are split into groups, each
one SDPA call. Layers with a logits soft cap go to the reference.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F

from tenon.plugins.attention.reference import ReferenceAttentionBackend
from tenon.spec.attention import (
    AttentionBackend,
    AttentionBackendConfig,
    AttentionLayer,
    AttentionMetadata,
)

_KEY = 0
_VALUE = 1
DEFAULT_MAX_PAIRS_PER_CALL = 1 << 22  # padded query rows x keys; scores are heads x this


@attrs.define(kw_only=True)
class RequestGroup:
    """Consecutive requests computed by one SDPA call; planned once per step."""

    token_start: int  # first query row of the group in the step's token order
    token_end: int
    max_query_len: int
    num_reqs: int
    num_blocks: int  # per request
    block_ids: torch.Tensor  # int64 [B * num_blocks], request after request
    padded_rows: torch.Tensor | None  # int64 [tokens]: row b * max_q + j; None when none pad
    last_key: torch.Tensor  # int64 [B, max_q, 1]: highest visible key position per row
    positions: torch.Tensor  # int64 [B, max_q, 1]: absolute position per row (0 for padding)
    # Set when every row sees keys 0 .. uniform_seq_len - 1 and nothing else (no window).
    uniform_seq_len: int | None = None
    masks: dict[int | None, torch.Tensor] = attrs.Factory(dict)  # window -> [B, 1, max_q, S]

    def num_visible_keys(self, sliding_window: int | None) -> int | None:
        """How many leading keys every row sees, when that needs no mask (None: it does)."""
        seq_len = self.uniform_seq_len
        if seq_len is None or (sliding_window is not None and sliding_window < seq_len):
            return None
        return seq_len

    def mask(self, sliding_window: int | None, num_keys: int) -> torch.Tensor:
        """The boolean mask for one window size, built by the first layer that needs it."""
        if sliding_window not in self.masks:
            key_positions = torch.arange(num_keys, device=self.last_key.device)  # [S]
            allowed = key_positions <= self.last_key  # [B, max_q, S]
            if sliding_window is not None:
                allowed &= key_positions > self.positions - sliding_window
            self.masks[sliding_window] = allowed.unsqueeze(1)  # [B, 1, max_q, S]
        return self.masks[sliding_window]


class SdpaAttentionBackend(AttentionBackend):
    """One SDPA call per layer per request group; computes in the activation dtype."""

    def __init__(
        self, config: AttentionBackendConfig, max_pairs_per_call: int = DEFAULT_MAX_PAIRS_PER_CALL
    ) -> None:
        super().__init__(config)
        self.max_pairs_per_call = max_pairs_per_call
        self._reference = ReferenceAttentionBackend(config)
        self._metadata: AttentionMetadata | None = None
        self._groups: list[RequestGroup] = []
        # Where this step's new K/V rows go, split once per step rather than once per layer.
        self._slot_blocks = torch.empty(0, dtype=torch.int64)  # int64 [num_tokens]
        self._slot_offsets = torch.empty(0, dtype=torch.int64)  # int64 [num_tokens]

    def prepare(self, metadata: AttentionMetadata) -> None:
        """Group the requests and build their index tensors (one host copy of the lengths)."""
        num_reqs = metadata.num_reqs
        query_starts = metadata.query_start_loc[: num_reqs + 1].tolist()
        seq_lens = metadata.seq_lens[:num_reqs].tolist()
        query_lens = [
            end - start for start, end in zip(query_starts[:-1], query_starts[1:], strict=True)
        ]
        self._groups = []
        first = 0
        for index in range(1, num_reqs + 1):
            if index == num_reqs or self._starts_group(
                query_lens[first : index + 1], seq_lens[first : index + 1]
            ):
                if query_starts[index] > query_starts[first]:  # skip groups with no query rows
                    self._groups.append(
                        self._plan(
                            metadata,
                            (first, index),
                            (query_starts[first], query_starts[index]),
                            max(query_lens[first:index]),
                            seq_lens[first:index],
                        )
                    )
                first = index
        block_size = self.config.block_size
        self._slot_blocks = torch.div(metadata.slot_mapping, block_size, rounding_mode="floor")
        self._slot_offsets = metadata.slot_mapping % block_size
        self._metadata = metadata

    def _starts_group(self, query_lens: list[int], seq_lens: list[int]) -> bool:
        """Whether the last request should begin a new group rather than join the others."""
        padded_rows = len(query_lens) * max(query_lens)
        num_keys = -(-max(seq_lens) // self.config.block_size) * self.config.block_size
        over_budget = padded_rows * num_keys > self.max_pairs_per_call
        wasteful = padded_rows > 2 * sum(query_lens) + len(query_lens)
        return over_budget or wasteful

    def _plan(
        self,
        metadata: AttentionMetadata,
        requests: tuple[int, int],
        tokens: tuple[int, int],
        max_query_len: int,
        group_seq_lens: list[int],
    ) -> RequestGroup:
        """Index tensors of requests `first:end`, whose query rows are `token_start:token_end`."""
        device = metadata.query_start_loc.device
        (first, end), (token_start, token_end) = requests, tokens
        num_reqs, num_tokens = end - first, token_end - token_start
        starts = metadata.query_start_loc[first : end + 1].long()  # [B + 1]
        query_lens = starts[1:] - starts[:-1]  # [B]
        seq_lens = metadata.seq_lens[first:end].long()  # [B]
        num_blocks = -(-max(group_seq_lens) // self.config.block_size)

        rows = torch.arange(max_query_len, device=device)  # [max_q]
        is_real = rows < query_lens[:, None]  # [B, max_q]
        positions = (seq_lens - query_lens)[:, None] + rows  # [B, max_q]
        last_key = positions if metadata.causal else (seq_lens - 1)[:, None].expand_as(positions)
        padded_rows = None
        if num_tokens != num_reqs * max_query_len:
            request_of_token = torch.repeat_interleave(
                torch.arange(num_reqs, device=device), query_lens, output_size=num_tokens
            )  # [tokens]
            row_in_request = (
                torch.arange(num_tokens, device=device) + token_start - starts[request_of_token]
            )  # [tokens]
            padded_rows = request_of_token * max_query_len + row_in_request  # [tokens]
        # Each row sees every key below the common length: one query row per request (decode)
        # or no causal limit, no padding rows, and all sequences equally long.
        sees_all_keys = max_query_len == 1 or not metadata.causal
        equal_lengths = min(group_seq_lens) == max(group_seq_lens)
        is_uniform = padded_rows is None and sees_all_keys and equal_lengths
        return RequestGroup(
            token_start=token_start,
            token_end=token_end,
            max_query_len=max_query_len,
            num_reqs=num_reqs,
            num_blocks=num_blocks,
            block_ids=metadata.block_table[first:end, :num_blocks].flatten().long(),
            uniform_seq_len=group_seq_lens[0] if is_uniform else None,
            padded_rows=padded_rows,
            last_key=torch.where(is_real, last_key, 0).unsqueeze(-1),  # [B, max_q, 1]
            positions=torch.where(is_real, positions, 0).unsqueeze(-1),  # [B, max_q, 1]
        )

    def forward(
        self,
        layer: AttentionLayer,
        query: torch.Tensor,  # [num_tokens, num_heads, head_size]
        key: torch.Tensor,  # [num_tokens, num_kv_heads, head_size]
        value: torch.Tensor,  # [num_tokens, num_kv_heads, head_size]
        kv_layer: torch.Tensor,  # [num_blocks, 2, block_size, num_kv_heads, head_size] (strided)
        metadata: AttentionMetadata,
    ) -> torch.Tensor:  # [num_tokens, num_heads, head_size]
        if layer.logits_soft_cap is not None:  # SDPA has no soft cap: the reference's math
            return self._reference.forward(layer, query, key, value, kv_layer, metadata)
        if layer.num_heads % layer.num_kv_heads != 0:
            raise ValueError(
                f"num_heads ({layer.num_heads}) must be a multiple of num_kv_heads "
                f"({layer.num_kv_heads})"
            )
        if metadata is not self._metadata:  # a caller that skipped prepare() still works
            self.prepare(metadata)
        self._write_kv(key, value, kv_layer)
        num_tokens = query.shape[0]
        if len(self._groups) == 1 and self._groups[0].token_end == num_tokens:
            return self._attend(layer, self._groups[0], query, kv_layer)
        output = torch.zeros_like(query)  # [num_tokens, H, D]; padding rows stay zero
        for group in self._groups:
            output[group.token_start : group.token_end] = self._attend(
                layer, group, query, kv_layer
            )
        return output

    def _write_kv(
        self,
        key: torch.Tensor,  # [num_tokens, num_kv_heads, head_size]
        value: torch.Tensor,  # [num_tokens, num_kv_heads, head_size]
        kv_layer: torch.Tensor,  # [num_blocks, 2, block_size, num_kv_heads, head_size] (strided)
    ) -> None:
        """The reference's `write_kv` with the slot split planned once per step: two index_put_
        calls on the K and V views (measured 5 us against 15 us per layer for one decode row)."""
        blocks, offsets = self._slot_blocks, self._slot_offsets
        if blocks.shape[0] != key.shape[0]:
            blocks, offsets = blocks[: key.shape[0]], offsets[: key.shape[0]]
        if key.dtype != kv_layer.dtype:
            key, value = key.to(kv_layer.dtype), value.to(kv_layer.dtype)
        kv_layer[:, _KEY].index_put_((blocks, offsets), key)
        kv_layer[:, _VALUE].index_put_((blocks, offsets), value)

    def _attend(
        self,
        layer: AttentionLayer,
        group: RequestGroup,
        query: torch.Tensor,  # [num_tokens, num_heads, head_size]
        kv_layer: torch.Tensor,  # [num_blocks, 2, block_size, num_kv_heads, head_size] (strided)
    ) -> torch.Tensor:  # [group tokens, num_heads, head_size]
        num_reqs, num_blocks, max_q = group.num_reqs, group.num_blocks, group.max_query_len
        _, num_heads, head_size = query.shape
        _, _, block_size, num_kv_heads, _ = kv_layer.shape
        num_keys = num_blocks * block_size
        rows = query[group.token_start : group.token_end]  # [tokens, H, D]
        if group.padded_rows is not None:
            padded = rows.new_zeros(num_reqs * max_q, num_heads, head_size)  # [B * max_q, H, D]
            rows = padded.index_copy_(0, group.padded_rows, rows)
        padded_query = rows.view(num_reqs, max_q, num_heads, head_size).transpose(1, 2)
        # padded_query: [B, H, max_q, D]
        # On the CPU, SDPA's half-precision kernels are several times slower than float32 ones
        # (measured: 1264 vs 397 us for a 16-request bf16 decode step), so compute in float32.
        compute_dtype = torch.float32 if query.device.type == "cpu" else query.dtype

        # One index_select gathers K and V of every block (whole blocks: several times faster
        # than advanced indexing on CPU), and one copy casts and lays them out for SDPA, which
        # runs faster on contiguous K/V than the copy costs. Measured against a gather, cast and
        # contiguous copy per K and per V: 69 against 105 us per layer for one decode row.
        blocks = kv_layer.index_select(0, group.block_ids)  # [B * num_blocks, 2, bs, Hkv, D]
        cached = torch.empty(
            (2, num_reqs, num_kv_heads, num_blocks, block_size, head_size),
            dtype=compute_dtype,
            device=query.device,
        )
        cached.copy_(
            blocks.view(num_reqs, num_blocks, 2, block_size, num_kv_heads, head_size).permute(
                2, 0, 4, 1, 3, 5
            )
        )
        keys, values = cached.view(2, num_reqs, num_kv_heads, num_keys, head_size)
        # keys, values: [B, Hkv, S, D]
        num_visible_keys = group.num_visible_keys(layer.sliding_window)
        mask = None
        if num_visible_keys is None:
            mask = group.mask(layer.sliding_window, num_keys)  # [B, 1, max_q, S]
        elif num_visible_keys < num_keys:  # the exact keys need no mask (measured 27 vs 35 us)
            keys, values = keys[:, :, :num_visible_keys], values[:, :, :num_visible_keys]
        out = F.scaled_dot_product_attention(
            padded_query.to(compute_dtype),
            keys,
            values,
            attn_mask=mask,
            scale=layer.scale,
            enable_gqa=True,
        )  # [B, H, max_q, D]
        out = out.to(query.dtype).transpose(1, 2).reshape(num_reqs * max_q, num_heads, head_size)
        if group.padded_rows is not None:
            out = out.index_select(0, group.padded_rows)  # [tokens, H, D]
        return out
