"""What the OffloadingConnector's scheduler side tells its worker side each step (picklable)."""

from __future__ import annotations

import attrs


@attrs.frozen(kw_only=True)
class BlockTransfer:
    """Blocks of one request to move: `block_hashes[i]` is the content of `block_ids[i]`."""

    request_id: str
    block_hashes: tuple[bytes, ...]
    block_ids: tuple[int, ...]

    def __attrs_post_init__(self) -> None:
        assert len(self.block_hashes) == len(self.block_ids)


@attrs.frozen(kw_only=True)
class OffloadingStepMetadata:
    # Tier -> device, into blocks just allocated to requests admitted this step.
    loads: tuple[BlockTransfer, ...] = ()
    # Device -> tiers, from blocks of finished requests, kept allocated until the copy is done.
    saves: tuple[BlockTransfer, ...] = ()
