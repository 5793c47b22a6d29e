"""KV connectors: move KV blocks between engines or to an external store (disaggregation).

One connector has two sides built separately, in the process where each runs:
- the scheduler side (engine core, no device tensors) decides what external KV a request can
  use and describes per step what the worker side must move;
- the worker side (beside the model runner) moves the bytes, layer by layer, overlapped with
  the forward pass.
Configured with vLLM's `--kv-transfer-config` JSON: `kv_connector` (the spec's name),
`kv_role` ("kv_producer", "kv_consumer", "kv_both") and `kv_connector_extra_config`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import torch

    from tenon.spec.attention import AttentionMetadata


@attrs.frozen(kw_only=True)
class ConnectorRequest:
    """What the scheduler side sees of a request."""

    request_id: str
    token_ids: Sequence[int]
    block_hashes: Sequence[bytes]
    block_size: int


class KVConnectorScheduler(abc.ABC):
    """Scheduler side. Called by the scheduler, in this order, for each request it admits."""

    def __init__(self, *, role: str, extra_config: Mapping[str, Any]) -> None:
        self.role = role
        self.extra_config = extra_config

    @abc.abstractmethod
    def num_external_tokens(self, request: ConnectorRequest, num_computed_tokens: int) -> int:
        """Tokens past `num_computed_tokens` (the local prefix hit) the external source can
        supply; whole blocks only, and never the last prompt token."""

    @abc.abstractmethod
    def on_allocated(
        self, request: ConnectorRequest, block_ids: Sequence[int], num_external_tokens: int
    ) -> None:
        """Blocks were allocated for the admitted request (called for every admitted request,
        also with `num_external_tokens` 0). `block_ids` is the request's block table up to the
        end of the external tokens (local prefix hit, then external blocks); the last
        `num_external_tokens // block_size` of them are the blocks to load into, matching
        `request.block_hashes` at the same indices. Remember them for `build_step_metadata`:
        the loads happen in this same step, before its forward."""

    @abc.abstractmethod
    def build_step_metadata(self) -> Any:
        """Once per step: a picklable description of this step's loads and saves, handed to the
        worker side through the scheduler output. Clears what it described."""

    @abc.abstractmethod
    def on_request_finished(self, request: ConnectorRequest, block_ids: Sequence[int]) -> bool:
        """The request finished (or was aborted). `request` carries only what was computed:
        `token_ids` are its computed tokens and `block_hashes` the hashes of its computed full
        blocks; `block_ids` is its whole block table, in the same order. Return True to keep
        its blocks until the worker reports the save done (through `finished_transfers`),
        False to free them now."""


class KVConnectorWorker(abc.ABC):
    """Worker side. Called by the model runner around each step's forward."""

    def __init__(self, *, role: str, extra_config: Mapping[str, Any]) -> None:
        self.role = role
        self.extra_config = extra_config

    @abc.abstractmethod
    def register_kv_cache(self, kv_cache: torch.Tensor, block_size: int) -> None:
        """Once: the whole cache, `[num_blocks, num_layers, 2, block_size, heads, head_size]`."""

    @abc.abstractmethod
    def start_load(self, step_metadata: Any) -> None:
        """Before the forward: begin this step's loads."""

    @abc.abstractmethod
    def wait_for_layer_load(self, layer_index: int) -> None:
        """Before layer `layer_index` attends: its loaded blocks must be in place. Called for
        every layer in order; every load of the step must be complete when the call for the
        last layer returns (a block holds every layer, so a connector may finish them all in
        the first call)."""

    @abc.abstractmethod
    def save_layer(
        self, layer_index: int, kv_layer: torch.Tensor, metadata: AttentionMetadata
    ) -> None:
        """After layer `layer_index` wrote its K/V: begin saving what this step must save."""

    @abc.abstractmethod
    def wait_for_save(self) -> None:
        """After the forward: saves begun this step are safe to forget (the cache may change)."""

    @abc.abstractmethod
    def finished_transfers(self) -> tuple[set[str], set[str]]:
        """(request ids whose saves finished, request ids whose loads finished) since last call."""

    @abc.abstractmethod
    def failed_block_ids(self) -> set[int]:
        """Block ids whose loads failed since the last call; the scheduler recomputes them."""

    def take_stored_bytes(self) -> int:
        """Optional: the bytes this side stored (handed to the store) since the last call, for
        the engine's `kv_connector_store_bytes` counter. Called once per step, after
        `failed_block_ids`; resets the count. The default reports nothing (0)."""
        return 0
