"""Copying checkpoint tensors into parameters.

Every parameter a `tenon.layers` module creates may carry a `weight_loader` attribute with the
signature `weight_loader(param, loaded, shard_index)`. Fused parameters (q/k/v, gate/up) stack
their shards along dim 0, so shard `i` fills the rows after the first `i` shards:

    merged weight [sum(output_sizes), input_size]
    rows 0 .. q-1        shard 0 (q_proj)
    rows q .. q+k-1      shard 1 (k_proj)
    rows q+k .. end      shard 2 (v_proj)

`shard_index=None` fills the whole parameter at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

WeightLoader = Callable[[torch.nn.Parameter, torch.Tensor, "int | None"], None]


def default_weight_loader(param: torch.Tensor, loaded: torch.Tensor) -> None:
    """Copy `loaded` into `param` (casting to its dtype) after checking the shapes match."""
    if tuple(param.shape) != tuple(loaded.shape):
        raise ValueError(
            f"checkpoint tensor has shape {tuple(loaded.shape)} but the parameter expects "
            f"{tuple(param.shape)}"
        )
    with torch.no_grad():
        param.copy_(loaded)


def sharded_weight_loader(output_sizes: Sequence[int]) -> WeightLoader:
    """A `weight_loader` for a parameter whose dim 0 stacks shards of `output_sizes` rows."""
    sizes = tuple(int(size) for size in output_sizes)
    offsets = [sum(sizes[:index]) for index in range(len(sizes))]

    def weight_loader(
        param: torch.nn.Parameter, loaded: torch.Tensor, shard_index: int | None = None
    ) -> None:
        if shard_index is None:
            default_weight_loader(param, loaded)
            return
        if not 0 <= shard_index < len(sizes):
            raise ValueError(
                f"shard_index {shard_index} is out of range for {len(sizes)} shards {sizes}"
            )
        rows = param.data.narrow(0, offsets[shard_index], sizes[shard_index])
        if tuple(rows.shape) != tuple(loaded.shape):
            raise ValueError(
                f"shard {shard_index} expects shape {tuple(rows.shape)} but the checkpoint "
                f"tensor has shape {tuple(loaded.shape)}"
            )
        with torch.no_grad():
            rows.copy_(loaded)

    return weight_loader


def load_param(
    params_dict: Mapping[str, torch.nn.Parameter],
    name: str,
    tensor: torch.Tensor,
    shard_index: int | None = None,
) -> None:
    """Load `tensor` into `params_dict[name]` through its `weight_loader` when it has one."""
    if name not in params_dict:
        raise ValueError(f"the model has no parameter named {name!r}")
    param = params_dict[name]
    weight_loader = getattr(param, "weight_loader", None)
    if weight_loader is not None:
        weight_loader(param, tensor, shard_index)
        return
    if shard_index is not None:
        raise ValueError(f"parameter {name!r} is not fused, so it cannot take shard {shard_index}")
    default_weight_loader(param, tensor)
