"""The Triton paged-attention backend: graph-safe, one code path for CUDA and ROCm.

Each layer's forward is one kernel launch in a decode step and two otherwise:

    decode          max_query_len <= 1: this step's K/V rows -> kv_layer at slot_mapping, then
                    split-KV flash-decoding over (request, KV head, split), whose last split to
                    finish merges the splits by log-sum-exp (`split_merge`)
    write_kv        otherwise: this step's K/V rows -> kv_layer (padding rows -> block 0),
      + prefill     then varlen flash attention over (query tile, KV head)

Launch shapes come from the padded token count, the request count and static sizes only, and the
kernels read lengths and block tables from the metadata's device buffers, so a decode step
captured in a graph replays correctly over refilled buffers. The decode split count follows the
request count, the KV head count, the model length and the SM count (`launch_config`); the
scratch the splits write (float32 partials and log-sum-exps, int32 arrival counters that every
launch leaves at zero) is allocated the first time a layer shape is seen (the engine's warm-up,
before capture) at its largest size over every request count up to `max_num_reqs`. Sliding
windows and logits soft caps are applied inside the kernels.
"""

from __future__ import annotations

import torch

from tenon.plugins.attention.triton_paged.decode_kernel import decode_attention
from tenon.plugins.attention.triton_paged.launch_config import (
    MAX_NUM_SPLITS,
    decode_low_latency,
    decode_num_splits,
    decode_tiles,
    prefill_tiles,
)
from tenon.plugins.attention.triton_paged.prefill_kernel import prefill_attention
from tenon.plugins.attention.triton_paged.write_kernel import write_kv
from tenon.spec.attention import (
    AttentionBackend,
    AttentionBackendConfig,
    AttentionLayer,
    AttentionMetadata,
    FusedRotary,
)


class TritonPagedAttentionBackend(AttentionBackend):
    """Paged attention in Triton kernels; `num_splits` fixes the decode split count and
    `low_latency` the decode loop (`launch_config.decode_low_latency`), for tests."""

    # Every kernel reads query, key and value through their strides (prefill steps skip three
    # copies a layer: 2.4% of a 16384-token prefill step's device time on an H200).
    accepts_strided_rows = True

    def __init__(
        self,
        config: AttentionBackendConfig,
        *,
        num_splits: int | None = None,
        low_latency: bool | None = None,
    ) -> None:
        super().__init__(config)
        if num_splits is not None and not 1 <= num_splits <= MAX_NUM_SPLITS:
            raise ValueError(f"num_splits must be within 1..{MAX_NUM_SPLITS}, got {num_splits}")
        self.device = torch.device(config.device)
        self.fixed_num_splits = num_splits
        self.fixed_low_latency = low_latency
        # ROCm builds of torch report their GPUs as "cuda" devices too.
        self.num_sms = (
            torch.cuda.get_device_properties(self.device).multi_processor_count
            if self.device.type == "cuda"
            else None
        )
        # Split-decode scratch, shared by every layer (one layer's decode finishes before the
        # next layer's starts on the same stream): float32 partial outputs and log-sum-exps, and
        # per (request, KV head) int32 arrival counters, zeroed once and left at zero by every
        # launch.
        self._partials = torch.empty(0, dtype=torch.float32, device=self.device)
        self._lses = torch.empty(0, dtype=torch.float32, device=self.device)
        self._arrivals = torch.zeros(0, dtype=torch.int32, device=self.device)

    def num_splits(self, num_reqs: int, num_kv_heads: int) -> int:
        """The decode split count for a step of `num_reqs` requests (static: no data values)."""
        if self.fixed_num_splits is not None:
            return self.fixed_num_splits
        return decode_num_splits(
            num_reqs=num_reqs,
            num_kv_heads=num_kv_heads,
            max_model_len=self.config.max_model_len,
            num_sms=self.num_sms,
        )

    def rotates_this_step(
        self, layer: AttentionLayer, metadata: AttentionMetadata, dtype: torch.dtype
    ) -> bool:
        """Decode steps in 16-bit dtypes: the decode kernel rotates the query and the new key
        as it loads them (one launch a layer fewer). Float32 keeps the model's rotary op, whose
        two roundings a fused multiply-add here would merge."""
        return metadata.max_query_len <= 1 and dtype in (torch.float16, torch.bfloat16)

    def forward_rotating(
        self,
        layer: AttentionLayer,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        kv_layer: torch.Tensor,
        metadata: AttentionMetadata,
        rotary: FusedRotary,
    ) -> torch.Tensor:
        if not self.rotates_this_step(layer, metadata, query.dtype):
            raise ValueError(
                "the Triton backend rotates inside attention only in 16-bit decode steps "
                f"(max_query_len <= 1), got max_query_len {metadata.max_query_len} and "
                f"{query.dtype}"
            )
        return self.forward(
            layer, query, key, value, kv_layer, metadata,
            rotary_tables=(rotary.cos_cache, rotary.signed_sin_cache),
        )  # fmt: skip

    def forward(
        self,
        layer: AttentionLayer,
        query: torch.Tensor,  # [num_tokens, num_heads, head_size]
        key: torch.Tensor,  # [num_tokens, num_kv_heads, head_size]
        value: torch.Tensor,  # [num_tokens, num_kv_heads, head_size]
        kv_layer: torch.Tensor,  # [num_blocks, 2, block_size, num_kv_heads, head_size] (strided)
        metadata: AttentionMetadata,
        rotary_tables: tuple[torch.Tensor, torch.Tensor] | None = None,  # decode only
    ) -> torch.Tensor:  # [num_tokens, num_heads, head_size]
        self._check(layer, query, kv_layer)
        num_tokens = query.shape[0]
        output = self._new_output(query)  # [num_tokens, num_heads, head_size]
        if num_tokens == 0:
            return output
        if query.stride(-1) != 1:
            query = query.contiguous()
        if metadata.max_query_len <= 1:
            self._decode(layer, query, key, value, kv_layer, metadata, output, rotary_tables)
            return output
        assert rotary_tables is None, "rotation inside attention is for decode steps"
        write_kv(key, value, kv_layer, metadata.slot_mapping)
        prefill_attention(
            output, query, kv_layer, metadata.query_start_loc, metadata.seq_lens,
            metadata.block_table,
            num_reqs=metadata.num_reqs,
            scale=layer.scale,
            sliding_window=layer.sliding_window,
            soft_cap=layer.logits_soft_cap,
            causal=metadata.causal,
            tiles=prefill_tiles(
                head_size=layer.head_size,
                group_size=layer.num_heads // layer.num_kv_heads,
                element_bytes=query.element_size(),
                max_query_len=metadata.max_query_len,
            ),
        )  # fmt: skip
        if num_tokens > metadata.num_actual_tokens:  # padding rows belong to no request
            output[metadata.num_actual_tokens :].zero_()
        return output

    def _new_output(self, query: torch.Tensor) -> torch.Tensor:
        """Uninitialised output; the kernels write every element (tests hand out NaNs here)."""
        return torch.empty(query.shape, dtype=query.dtype, device=query.device)

    def _decode(
        self,
        layer: AttentionLayer,
        query: torch.Tensor,  # [num_tokens, num_heads, head_size]
        key: torch.Tensor,  # [num_tokens, num_kv_heads, head_size]
        value: torch.Tensor,  # [num_tokens, num_kv_heads, head_size]
        kv_layer: torch.Tensor,  # [num_blocks, 2, block_size, num_kv_heads, head_size] (strided)
        metadata: AttentionMetadata,
        output: torch.Tensor,  # [num_tokens, num_heads, head_size]
        rotary_tables: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> None:
        num_reqs = metadata.num_reqs
        num_splits = self.num_splits(num_reqs, layer.num_kv_heads)
        if num_splits > 1:
            self._reserve_scratch(layer, num_reqs, num_splits)
        decode_attention(
            output, query, key, value, kv_layer, metadata.query_start_loc, metadata.seq_lens,
            metadata.block_table, metadata.slot_mapping,
            (self._partials, self._lses, self._arrivals),
            rotary_tables,
            num_reqs=num_reqs,
            num_splits=num_splits,
            low_latency=(
                decode_low_latency(max(num_reqs, query.shape[0]))
                if self.fixed_low_latency is None
                else self.fixed_low_latency
            ),
            scale=layer.scale,
            sliding_window=layer.sliding_window,
            soft_cap=layer.logits_soft_cap,
            tiles=decode_tiles(
                head_size=layer.head_size,
                group_size=layer.num_heads // layer.num_kv_heads,
                element_bytes=query.element_size(),
            ),
        )  # fmt: skip

    def _reserve_scratch(self, layer: AttentionLayer, num_reqs: int, num_splits: int) -> None:
        """Make the scratch hold `num_reqs` requests of `num_splits` splits of this layer; when
        it grows, it grows to the largest any request count up to max_num_reqs needs, so it is
        allocated once per layer shape, outside any captured graph. The arrival counters are
        zeroed when allocated and never reallocated while large enough: the decode leaves them
        at zero."""
        num_split_rows = num_reqs * num_splits
        if (
            self._lses.numel() >= num_split_rows * layer.num_heads
            and self._partials.numel() >= num_split_rows * layer.num_heads * layer.head_size
            and self._arrivals.numel() >= num_reqs * layer.num_kv_heads
        ):
            return
        max_num_reqs = max(num_reqs, self.config.max_num_reqs)
        max_rows = max(
            num_split_rows,
            *(
                reqs * self.num_splits(reqs, layer.num_kv_heads)
                for reqs in range(1, self.config.max_num_reqs + 1)
            ),
        )
        num_lses = max(self._lses.numel(), max_rows * layer.num_heads)
        num_partials = max(self._partials.numel(), max_rows * layer.num_heads * layer.head_size)
        num_arrivals = max_num_reqs * layer.num_kv_heads
        if num_lses > self._lses.numel() or num_partials > self._partials.numel():
            self._lses = torch.empty(num_lses, dtype=torch.float32, device=self.device)
            self._partials = torch.empty(num_partials, dtype=torch.float32, device=self.device)
        if num_arrivals > self._arrivals.numel():
            self._arrivals = torch.zeros(num_arrivals, dtype=torch.int32, device=self.device)

    @staticmethod
    def _check(layer: AttentionLayer, query: torch.Tensor, kv_layer: torch.Tensor) -> None:
        if layer.num_heads % layer.num_kv_heads != 0:
            raise ValueError(
                f"num_heads ({layer.num_heads}) must be a multiple of num_kv_heads "
                f"({layer.num_kv_heads})"
            )
        if kv_layer.dtype != query.dtype:
            raise ValueError(
                f"the triton backend computes in the KV cache's dtype: the cache is "
                f"{kv_layer.dtype} but the query is {query.dtype}; use one dtype for both"
            )
