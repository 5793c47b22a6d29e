"""An attention backend over torch's scaled_dot_product_attention, one call per request.

It gathers each request's K/V from the paged cache through its block-table row, then lets SDPA
do grouped-query attention with a causal mask offset to the request's position: the query rows
of a step are the LAST `query_len` tokens of the sequence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tenon.spec.attention import AttentionBackend, AttentionLayer, AttentionMetadata


class SdpaAttentionBackend(AttentionBackend):
    def forward(
        self,
        layer: AttentionLayer,
        query: torch.Tensor,  # [num_tokens, num_heads, head_size]
        key: torch.Tensor,  # [num_tokens, num_kv_heads, head_size]
        value: torch.Tensor,  # [num_tokens, num_kv_heads, head_size]
        kv_layer: torch.Tensor,  # [num_blocks, 2, block_size, num_kv_heads, head_size]
        metadata: AttentionMetadata,
    ) -> torch.Tensor:  # [num_tokens, num_heads, head_size]
        if layer.sliding_window is not None or layer.logits_soft_cap is not None:
            raise ValueError(
                "example-sdpa supports neither sliding windows nor logit soft-capping; "
                "choose another backend with --attention-backend"
            )
        block_size = kv_layer.shape[2]
        num_tokens = key.shape[0]
        # slots: [num_tokens]; padding rows point into the null block 0, which is never read.
        slots = metadata.slot_mapping[:num_tokens]
        kv_layer[slots // block_size, 0, slots % block_size] = key
        kv_layer[slots // block_size, 1, slots % block_size] = value

        output = torch.zeros_like(query)  # padding rows stay zero
        query_starts = metadata.query_start_loc.tolist()
        seq_lens = metadata.seq_lens.tolist()
        for request in range(metadata.num_reqs):
            start, end = query_starts[request], query_starts[request + 1]
            seq_len = seq_lens[request]
            num_blocks = -(-seq_len // block_size)
            block_ids = metadata.block_table[request, :num_blocks].long()
            # cached_k/v: [seq_len, num_kv_heads, head_size]
            cached_k = kv_layer[block_ids, 0].flatten(0, 1)[:seq_len]
            cached_v = kv_layer[block_ids, 1].flatten(0, 1)[:seq_len]
            query_len = end - start
            mask = None
            if metadata.causal:
                # mask: [query_len, seq_len]; query row i sits at position seq_len - query_len + i
                query_positions = torch.arange(seq_len - query_len, seq_len, device=query.device)
                key_positions = torch.arange(seq_len, device=query.device)
                mask = key_positions[None, :] <= query_positions[:, None]
            attended = F.scaled_dot_product_attention(
                query[start:end].transpose(0, 1),  # [num_heads, query_len, head_size]
                cached_k.transpose(0, 1),  # [num_kv_heads, seq_len, head_size]
                cached_v.transpose(0, 1),
                attn_mask=mask,
                scale=layer.scale,
                enable_gqa=True,
            )
            output[start:end] = attended.transpose(0, 1)
        return output
