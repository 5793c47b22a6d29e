"""tenon.spec: the plugin contract, the only thing a plugin must import.

Sections:
- markers and hooks: `hookspec`, `hookimpl`, `tenon.spec.hookspecs`;
- records: one frozen spec per implementation (`PlatformSpec`, `ModelSpec`, ...) with its
  typed capabilities, matched against `Requirements`;
- interfaces, one module per kind: `platform`, `model`, `attention`, `quantization`,
  `drafter`, `kv_tier`, `kv_connector`, `loader`, `ops`;
- versioning: `API_VERSION`, `unsupported_reason` (`version`), deprecated forms that still work
  with a `TenonDeprecationWarning` (`deprecation`).

Nothing here imports torch at import time, so discovery stays cheap in every process.
"""

from tenon.spec.capabilities import (
    AttentionCapabilities,
    DrafterCapabilities,
    KVConnectorCapabilities,
    KVTierCapabilities,
    LoaderCapabilities,
    ModelCapabilities,
    OpCapabilities,
    PlatformCapabilities,
    QuantCapabilities,
)
from tenon.spec.deprecation import TenonDeprecationWarning
from tenon.spec.markers import ENTRY_POINT_GROUP, PROJECT_NAME, hookimpl, hookspec
from tenon.spec.records import (
    AttentionBackendSpec,
    DrafterSpec,
    KVConnectorSpec,
    KVTierSpec,
    ModelLoaderSpec,
    ModelSpec,
    OpSpec,
    PlatformSpec,
    PluginKind,
    PluginSpec,
    QuantSchemeSpec,
)
from tenon.spec.requirements import Requirements
from tenon.spec.version import API_VERSION, supported_range, unsupported_reason

__all__ = [
    "API_VERSION",
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
    "AttentionBackendSpec",
    "AttentionCapabilities",
    "DrafterCapabilities",
    "DrafterSpec",
    "KVConnectorCapabilities",
    "KVConnectorSpec",
    "KVTierCapabilities",
    "KVTierSpec",
    "LoaderCapabilities",
    "ModelCapabilities",
    "ModelLoaderSpec",
    "ModelSpec",
    "OpCapabilities",
    "OpSpec",
    "PlatformCapabilities",
    "PlatformSpec",
    "PluginKind",
    "PluginSpec",
    "QuantCapabilities",
    "QuantSchemeSpec",
    "Requirements",
    "TenonDeprecationWarning",
    "hookimpl",
    "hookspec",
    "supported_range",
    "unsupported_reason",
]
