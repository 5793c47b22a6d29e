"""GGUF tensors as float32 torch tensors in HF's layout and names.

Two format quirks are undone here:

1. Dimension order. GGUF lists dims fastest-varying first, so a tensor GGUF calls [576, 49152]
   is numpy/torch shape (49152, 576): HF's [out_features, in_features] for a linear weight.

2. Q/K row order (llama-family files only). HF's RoPE rotates the two halves of each head;
   llama.cpp's rotates adjacent pairs, so its converter reorders each head's rows:

       HF rows of one head (head_dim = 2 * half):   x0 x1 ... x(half-1) | y0 y1 ... y(half-1)
       GGUF rows of the same head:                  x0 y0 x1 y1 ... x(half-1) y(half-1)

   (convert_hf_to_gguf: reshape(n_head, 2, half, ...).swapaxes(1, 2)); the inverse is
   reshape(n_head, half, 2, ...).swapaxes(1, 2). K uses the KV head count.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from gguf import GGUFReader
from gguf.quants import dequantize
from tqdm.auto import tqdm

from tenon.plugins.loaders.gguf_names import (
    PERMUTED_QK_ARCHITECTURES,
    expected_hf_shape,
    gguf_to_hf_names,
    is_permuted_qk,
)


def unpermute_qk_rows(rows: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Undo llama.cpp's per-head pair interleaving on the first dim of a Q/K weight or bias."""
    # rows: [num_heads * head_dim, *rest] (weight rest = [hidden_size], bias rest = [])
    half_head_dim = rows.shape[0] // num_heads // 2
    if num_heads * 2 * half_head_dim != rows.shape[0]:
        raise ValueError(
            f"cannot split {rows.shape[0]} Q/K rows into {num_heads} heads of even size; "
            "the head counts in the GGUF metadata do not match the tensor"
        )
    paired = rows.reshape(num_heads, half_head_dim, 2, *rows.shape[1:])
    return paired.transpose(1, 2).reshape(rows.shape).contiguous()


def dequantize_tensor(data: np.ndarray, tensor_type: Any, gguf_name: str) -> np.ndarray:
    """A float32 copy of one tensor's values (any type `gguf.quants.dequantize` knows)."""
    try:
        values = dequantize(data, tensor_type)
    except NotImplementedError as error:
        raise ValueError(
            f"GGUF tensor {gguf_name} uses {tensor_type.name}, which the gguf package cannot "
            f"dequantize ({error}); convert the model with a supported type (e.g. Q8_0, Q4_K)"
        ) from error
    values = values.astype(np.float32, copy=False)
    # F32 comes back as a read-only view of the memory-mapped file: copy it out.
    return values if values.flags.writeable else values.copy()


def iter_gguf_tensors(
    reader: GGUFReader, config: Any, architecture: str
) -> Iterator[tuple[str, torch.Tensor]]:
    """(HF name, float32 tensor in HF layout) for every tensor of the file, in file order."""
    names = gguf_to_hf_names(config.num_hidden_layers)
    unknown = [tensor.name for tensor in reader.tensors if tensor.name not in names]
    if unknown:
        raise ValueError(
            f"GGUF tensors with no HF counterpart in the {architecture} loader: "
            f"{', '.join(unknown[:10])}; this file's model variant is not supported"
        )
    permuted = architecture in PERMUTED_QK_ARCHITECTURES
    for tensor in tqdm(reader.tensors, desc="dequantising GGUF tensors", unit="tensor"):
        hf_name = names[tensor.name]
        shape = tuple(int(dim) for dim in reversed(tensor.shape))
        values = dequantize_tensor(tensor.data, tensor.tensor_type, tensor.name)
        # weights: [out_features, in_features] (HF layout); norms and biases: [features]
        weights = torch.from_numpy(values.reshape(shape))
        expected = expected_hf_shape(hf_name, config)
        if tuple(weights.shape) != expected:
            raise ValueError(
                f"GGUF tensor {tensor.name} has shape {tuple(weights.shape)} but the config "
                f"implies {expected} for {hf_name}; the file's metadata and tensors disagree"
            )
        if permuted and is_permuted_qk(tensor.name):
            is_query = ".attn_q." in tensor.name
            num_heads = config.num_attention_heads if is_query else config.num_key_value_heads
            weights = unpermute_qk_rows(weights, num_heads)
        yield hf_name, weights
