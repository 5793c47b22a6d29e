"""What the worker side of a KV connector reports to the scheduler after each step.

Travels in `RunnerOutput.kv_connector_output` (None when no connector is configured).
"""

from __future__ import annotations

import attrs


@attrs.frozen(kw_only=True)
class KVConnectorOutput:
    # Requests whose saves finished: the scheduler frees the blocks it kept for them.
    finished_sending: frozenset[str] = frozenset()
    # Requests whose loads finished (informational: loads complete within their step).
    finished_recving: frozenset[str] = frozenset()
    # Blocks whose loads failed this step: their requests are recomputed from the first one.
    failed_block_ids: frozenset[int] = frozenset()
    # The connector raised while loading: every load of this step counts as failed.
    all_loads_failed: bool = False
    # Seconds this step waited for loads (start_load to the last wait_for_layer_load) and
    # spent handing saves over (save_layer calls and wait_for_save).
    load_wait_s: float = 0.0
    save_s: float = 0.0
    # Bytes the connector reports written since the last step (0 when it does not report).
    stored_bytes: int = 0
