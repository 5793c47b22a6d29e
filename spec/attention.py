"""Attention backends: the per-step metadata, the KV cache layout, and the backend interface.

KV cache layout (decided with the KV tiers in mind). The worker makes ONE allocation with the
block outermost, so a whole block (every layer, K and V) is one contiguous run of bytes that a
tier moves to the CPU or disk in a single copy:

    kv_cache: [num_blocks, num_layers, 2, block_size, num_kv_heads, head_size]

    block 0 (the null block: padding tokens write here, never read)
    block 1 ┌ layer 0 ┌ K [block_size, num_kv_heads, head_size]
            │         └ V [block_size, num_kv_heads, head_size]
            ├ layer 1 ┌ K ...
            │ ...
    block 2 ...

Each layer sees a strided view `kv_cache[:, layer]`, shape
`[num_blocks, 2, block_size, num_kv_heads, head_size]`; its stride along blocks is
`num_layers * 2 * block_size * num_kv_heads * head_size` elements, so kernels must address blocks
through `kv_layer.stride(0)`, never assume contiguity across blocks.

Token addressing. A request's tokens live in the blocks listed in its row of `block_table`, in
order: token `i` of a request is at block `block_table[r, i // block_size]`, offset
`i % block_size`. `slot_mapping[t] = block_id * block_size + offset` says where the K and V of
this step's token `t` are written. Example, block_size 4, two requests:

    request 0: 6 tokens, blocks [7, 2]     request 1: 3 tokens, blocks [5]
    block_table = [[7, 2, 0, ...],          (unused entries are 0, the null block)
                   [5, 0, 0, ...]]
    slot of token 5 of request 0 = 2 * 4 + 1 = 9
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import attrs

if TYPE_CHECKING:
    import torch

KV_CACHE_LAYOUT = "blocks_outermost"
NULL_BLOCK_ID = 0


@attrs.frozen(kw_only=True)
class AttentionMetadata:
    """Built once per step by the model runner into persistent device buffers (graph-safe).

    Tokens of one step are laid out request after request; request r owns query rows
    `query_start_loc[r]:query_start_loc[r + 1]`, which are the LAST query-length tokens of its
    sequence (earlier tokens are in the KV cache from earlier steps or a prefix-cache hit).
    Decode-only and mixed prefill/decode batches use the same fields.
    """

    query_start_loc: torch.Tensor  # int32 [num_reqs + 1], cumulative query lengths from 0
    seq_lens: torch.Tensor  # int32 [num_reqs], tokens in the sequence after this step
    block_table: torch.Tensor  # int32 [num_reqs, max_blocks_per_req] (a view of the buffer)
    slot_mapping: torch.Tensor  # int64 [num_tokens], where each new token's K/V is written
    max_query_len: int  # host copy: the longest query this step (1 for decode-only)
    max_seq_len: int  # host copy: the longest sequence this step
    num_reqs: int
    num_actual_tokens: int  # tokens before padding; rows past it are padding (slot in block 0)
    causal: bool = True

    @property
    def is_decode_only(self) -> bool:
        return self.max_query_len == 1


@attrs.frozen(kw_only=True)
class AttentionLayer:
    """The static description of one attention layer, fixed when the model is built."""

    layer_index: int
    num_heads: int
    num_kv_heads: int
    head_size: int
    scale: float
    sliding_window: int | None = None
    logits_soft_cap: float | None = None


@attrs.frozen(kw_only=True)
class AttentionBackendConfig:
    """What a backend is constructed with, once per worker."""

    device: str  # "cpu", "cuda:0", ...
    dtype: str  # KV cache and activation dtype name, e.g. "bfloat16"
    block_size: int
    num_layers: int
    max_num_reqs: int
    max_num_tokens: int  # per step (the token budget, padded)
    max_model_len: int


@attrs.frozen(kw_only=True)
class FusedRotary:
    """The rotary embedding a backend applies inside its own kernels (`rotates_this_step`):
    every query and key head rotated whole (rotary_dim == head_size) in the NeoX halves layout,
    as `tenon.layers.ops_reference.rotate` does with these tables' rows at `positions`:

        rotated = x * cos + roll(x, head_size / 2) * signed_sin    (each product and the sum
                                                                    rounded to x's dtype)

    A compiled kernel may fuse the multiply-add (one rounding where that rounds twice), so the
    rotated rows may differ from the model's rotary op in the last bit. Positions are token
    indices (the runner's), so a backend may take a decode row's position as its request's
    sequence length - 1 instead of reading `positions` (the Triton decode kernel does).
    """

    positions: torch.Tensor  # int64 [num_tokens]
    cos_cache: torch.Tensor  # [max_position, head_size], the activations' dtype
    signed_sin_cache: torch.Tensor  # [max_position, head_size], first half negated


class AttentionBackend(abc.ABC):
    """Computes attention over the paged KV cache. One instance per worker.

    Who calls what, when:
    - The model runner constructs the backend once with an `AttentionBackendConfig`.
    - Every step, after filling the metadata buffers, the runner calls `prepare(metadata)` once
      (outside any captured graph region only if `capabilities.supports_graphs` is False).
    - Every attention layer calls `forward(...)` once per step, through `tenon.layers.Attention`.
    What must hold:
    - `forward` first writes this step's `key`/`value` rows into `kv_layer` at `slot_mapping`
      (rows at or past `num_actual_tokens` are padding and may be written to block 0), then
      returns causal attention of each query row over its request's cached tokens plus the new
      ones, with grouped-query sharing (query head h reads KV head h // (num_heads // num_kv_heads)).
    - No host synchronisation and no allocation that depends on data values inside `forward`
      when graph capture is declared: shapes come from the padded token count only.
    - The runner zero-fills the cache once at allocation, so every slot a backend may read past
      a request's length holds finite values (zeros or stale K/V): a backend may gather whole
      blocks and mask the tail, but must mask it.
    - The reference backend (`tenon.plugins.attention.reference`) is the oracle: a faster
      backend matches it within dtype tolerance on random paged layouts (`tenon.testing`).
    - `query`, `key` and `value` are dense unless the class sets `accepts_strided_rows`: then
      they may arrive as views of the model's fused projection output, as `forward_rotating`'s
      always do (each row's head dimension contiguous, heads evenly strided, rows strided).
      Models skip three copies a layer on multi-token steps for a backend that takes them.
    """

    accepts_strided_rows: ClassVar[bool] = False

    def __init__(self, config: AttentionBackendConfig) -> None:
        self.config = config

    def prepare(self, metadata: AttentionMetadata) -> None:  # noqa: B027 - optional hook
        """Per-step planning into the backend's own persistent buffers; default: nothing."""

    @abc.abstractmethod
    def forward(
        self,
        layer: AttentionLayer,
        query: torch.Tensor,  # [num_tokens, num_heads, head_size]
        key: torch.Tensor,  # [num_tokens, num_kv_heads, head_size]
        value: torch.Tensor,  # [num_tokens, num_kv_heads, head_size]
        kv_layer: torch.Tensor,  # [num_blocks, 2, block_size, num_kv_heads, head_size] (strided)
        metadata: AttentionMetadata,
    ) -> torch.Tensor:  # [num_tokens, num_heads, head_size]
        """Write K/V for this step's tokens, then attend. See the class docstring."""

    def rotates_this_step(
        self, layer: AttentionLayer, metadata: AttentionMetadata, dtype: torch.dtype
    ) -> bool:
        """Whether `forward_rotating` serves this step (saving the model's rotary kernel: one
        launch a layer, which is felt where a decode step is latency-bound); default never."""
        return False

    def forward_rotating(
        self,
        layer: AttentionLayer,
        query: torch.Tensor,  # [num_tokens, num_heads, head_size], not rotated
        key: torch.Tensor,  # [num_tokens, num_kv_heads, head_size], not rotated
        value: torch.Tensor,  # [num_tokens, num_kv_heads, head_size]
        kv_layer: torch.Tensor,
        metadata: AttentionMetadata,
        rotary: FusedRotary,
    ) -> torch.Tensor:  # [num_tokens, num_heads, head_size]
        """`forward` of the rotated query and key (the cache gets the rotated key), for steps
        where `rotates_this_step` said so; `query` and `key` may be overwritten. The three
        arrive as views of the model's fused projection output: each row's head dimension is
        contiguous, but rows are strided (a backend that needs dense rows copies them). A step
        it did not accept is the caller's error: by default, every step."""
        raise ValueError(
            f"{type(self).__name__} does not rotate inside attention: call forward_rotating "
            "only where rotates_this_step is true, and rotate query and key before forward "
            "otherwise"
        )


@attrs.frozen(kw_only=True)
class ForwardContext:
    """Everything a model's forward needs besides token ids and positions, passed explicitly.

    The model runner builds one per step and hands it down the model's `forward`; there is no
    global forward context to set and reset.
    """

    attention_metadata: AttentionMetadata
    attention_backend: AttentionBackend
    kv_layers: Sequence[torch.Tensor]  # per layer: the strided view described in this module
