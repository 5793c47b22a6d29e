"""How much device memory a worst-case step needs beyond the weights, measured before the KV
cache is sized (GPUs only; on the CPU the cache has a fixed budget).

The profile runs one forward pass over `max_num_batched_tokens` tokens spread over
`max_num_seqs` prompts (each at most `max_model_len` long), computes logits for one row per
prompt and a softmax over them (the sampler's largest temporaries), and reads the allocator's
peak. A throw-away KV cache just large enough for the profile's tokens backs the attention
layers; its bytes are not counted.

    KV budget = total * gpu_memory_utilization
                - (total - free)           device memory already in use: CUDA context,
                                            library workspaces, weights, other processes
                - peak activation bytes     from the profile
                - graph reserve             captured decode graphs' own memory
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from tenon.spec.attention import AttentionBackend, AttentionMetadata, ForwardContext
from tenon.spec.model import KVCacheSpec
from tenon.worker.kv_cache import allocate_kv_cache

# Captured decode graphs keep their own activations (a decode batch of at most 1024 rows) in one
# shared pool; measured well under this on Llama-3.1-8B (144 MiB for 36 sizes up to 1024).
GRAPH_RESERVE_BYTES = 512 << 20


@attrs.frozen(kw_only=True)
class MemoryProfile:
    total_bytes: int
    in_use_bytes: int  # device-wide, after the profile, with torch's cache emptied
    peak_activation_bytes: int
    graph_reserve_bytes: int

    def kv_budget_bytes(self, gpu_memory_utilization: float) -> int:
        return (
            int(self.total_bytes * gpu_memory_utilization)
            - self.in_use_bytes
            - self.peak_activation_bytes
            - self.graph_reserve_bytes
        )

    def describe(self) -> str:
        gib = 2**30
        return (f"memory profile: {self.total_bytes / gib:.1f} GiB total, {self.in_use_bytes / gib:.2f} "
                f"GiB in use (weights, context, other processes), peak activations "
                f"{self.peak_activation_bytes / gib:.2f} GiB, graph reserve "
                f"{self.graph_reserve_bytes / gib:.2f} GiB")


def profile_step_memory(
    *,
    model: Any,
    attention_backend: AttentionBackend,
    kv_spec: KVCacheSpec,
    block_size: int,
    dtype: torch.dtype,
    device: torch.device,
    max_num_tokens: int,
    max_num_seqs: int,
    max_model_len: int,
    vocab_size: int,
    with_graphs: bool,
) -> MemoryProfile:
    assert device.type == "cuda", "memory profiling reads the CUDA allocator"
    lengths = _prompt_lengths(max_num_tokens, max_num_seqs, max_model_len)
    num_blocks_needed = sum(-(-length // block_size) for length in lengths) + 1
    kv_cache, kv_layers = allocate_kv_cache(kv_spec, num_blocks_needed, block_size, dtype, device)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base_bytes = torch.cuda.memory_allocated(device)
    metadata, input_ids, positions, last_rows = synthetic_step_inputs(
        lengths, block_size, vocab_size, device
    )
    attention_backend.prepare(metadata)
    context = ForwardContext(
        attention_metadata=metadata, attention_backend=attention_backend, kv_layers=kv_layers
    )
    hidden = model.forward(input_ids, positions, context)
    # logits: float32 [num_seqs, vocab_size]; softmax and a draw stand in for the sampler
    logits = model.compute_logits(hidden[last_rows])
    probs = torch.softmax(logits, dim=-1)
    probs.div(torch.empty_like(probs).exponential_()).argmax(dim=-1)
    torch.cuda.synchronize(device)
    peak_bytes = torch.cuda.max_memory_allocated(device) - base_bytes
    del kv_cache, kv_layers, hidden, logits, probs, context, metadata
    torch.cuda.empty_cache()
    free_bytes, total_bytes = torch.cuda.mem_get_info(device)
    return MemoryProfile(
        total_bytes=total_bytes,
        in_use_bytes=total_bytes - free_bytes,
        peak_activation_bytes=peak_bytes,
        graph_reserve_bytes=GRAPH_RESERVE_BYTES if with_graphs else 0,
    )


def _prompt_lengths(max_num_tokens: int, max_num_seqs: int, max_model_len: int) -> list[int]:
    """`max_num_tokens` tokens over at most `max_num_seqs` prompts of at most `max_model_len`."""
    num_seqs = max(min(max_num_seqs, max_num_tokens), -(-max_num_tokens // max_model_len))
    base, extra = divmod(max_num_tokens, num_seqs)
    return [base + (1 if index < extra else 0) for index in range(num_seqs)]


def synthetic_step_inputs(
    lengths: list[int], block_size: int, vocab_size: int, device: torch.device
) -> tuple[AttentionMetadata, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A step of whole prompts of `lengths` (random ids) on KV blocks 1, 2, ... in order:
    (metadata, input_ids, positions, each prompt's last row)."""
    num_tokens = sum(lengths)
    max_blocks = max(-(-length // block_size) for length in lengths)
    block_table = torch.zeros((len(lengths), max_blocks), dtype=torch.int32)
    slot_mapping = torch.empty(num_tokens, dtype=torch.int64)
    positions = torch.empty(num_tokens, dtype=torch.int64)
    next_block, row = 1, 0  # block 0 is the null block
    for index, length in enumerate(lengths):
        num_blocks = -(-length // block_size)
        blocks = torch.arange(next_block, next_block + num_blocks, dtype=torch.int64)
        block_table[index, :num_blocks] = blocks.to(torch.int32)
        token_positions = torch.arange(length, dtype=torch.int64)
        positions[row : row + length] = token_positions
        slot_mapping[row : row + length] = (
            blocks[token_positions // block_size] * block_size + token_positions % block_size
        )
        next_block += num_blocks
        row += length
    cumulative = torch.tensor([0, *lengths], dtype=torch.int64).cumsum(0)
    metadata = AttentionMetadata(
        query_start_loc=cumulative.to(torch.int32).to(device),
        seq_lens=torch.tensor(lengths, dtype=torch.int32, device=device),
        block_table=block_table.to(device),
        slot_mapping=slot_mapping.to(device),
        max_query_len=max(lengths),
        max_seq_len=max(lengths),
        num_reqs=len(lengths),
        num_actual_tokens=num_tokens,
    )
    input_ids = torch.randint(0, vocab_size, (num_tokens,), dtype=torch.int64, device=device)
    last_rows = (cumulative[1:] - 1).to(device)
    return metadata, input_ids, positions.to(device), last_rows
