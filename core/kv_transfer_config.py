"""`--kv-transfer-config`: which KV connector the engine runs, in vLLM's JSON shape.

    --kv-transfer-config '{"kv_connector": "SharedStorageConnector", "kv_role": "kv_both",
                           "kv_connector_extra_config": {"shared_storage_path": "/tmp/kv"}}'

`kv_connector` names a registered connector (`tenon doctor` lists them); `kv_role` is one of
`KV_ROLES`; `kv_connector_extra_config` is handed to both sides of the connector untouched.
vLLM's other keys (`kv_rank`, `kv_parallel_size`, `kv_ip`, `kv_port`, ...) are accepted and
ignored, so a config written for vLLM parses here; a key neither knows is refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

KV_ROLES: tuple[str, ...] = ("kv_producer", "kv_consumer", "kv_both")

# vLLM's KVTransferConfig fields Tenon does not use: accepted so vLLM configs parse unchanged.
VLLM_IGNORED_KEYS: frozenset[str] = frozenset(
    {
        "engine_id",
        "kv_buffer_device",
        "kv_buffer_size",
        "kv_rank",
        "kv_parallel_size",
        "kv_ip",
        "kv_port",
        "kv_connector_module_path",
        "kv_load_failure_policy",
    }
)


@attrs.frozen(kw_only=True)
class KVTransferConfig:
    kv_connector: str
    kv_role: str
    kv_connector_extra_config: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def is_producer(self) -> bool:
        return self.kv_role in ("kv_producer", "kv_both")

    @property
    def is_consumer(self) -> bool:
        return self.kv_role in ("kv_consumer", "kv_both")


def parse_kv_transfer_config(value: str | Mapping[str, Any] | None) -> KVTransferConfig | None:
    """The config from the flag's JSON text (or an already parsed mapping); None when unset.

    Raises ValueError saying what to fix for bad JSON, a missing connector name, an unknown
    role or key."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"--kv-transfer-config is not valid JSON ({error.msg} at position {error.pos}): "
                f"{value!r}; give an object such as "
                '\'{"kv_connector": "SharedStorageConnector", "kv_role": "kv_both"}\''
            ) from None
    else:
        parsed = value
    if not isinstance(parsed, Mapping):
        raise ValueError(
            f"--kv-transfer-config must be a JSON object, got {type(parsed).__name__}: {value!r}"
        )
    known = {"kv_connector", "kv_role", "kv_connector_extra_config"}
    unknown = sorted(set(parsed) - known - VLLM_IGNORED_KEYS)
    if unknown:
        raise ValueError(
            f"--kv-transfer-config has unknown keys {unknown}; Tenon reads "
            f"{sorted(known)} (and ignores vLLM's {sorted(VLLM_IGNORED_KEYS)})"
        )
    connector = parsed.get("kv_connector")
    if not isinstance(connector, str) or not connector:
        raise ValueError(
            "--kv-transfer-config needs \"kv_connector\": the name of a registered KV connector "
            "(`tenon doctor` lists them)"
        )
    role = parsed.get("kv_role", "kv_both")
    if role not in KV_ROLES:
        raise ValueError(
            f"--kv-transfer-config kv_role {role!r} is not one of {', '.join(KV_ROLES)}"
        )
    extra = parsed.get("kv_connector_extra_config") or {}
    if not isinstance(extra, Mapping):
        raise ValueError(
            "--kv-transfer-config kv_connector_extra_config must be a JSON object, got "
            f"{type(extra).__name__}"
        )
    return KVTransferConfig(
        kv_connector=connector, kv_role=role, kv_connector_extra_config=dict(extra)
    )
