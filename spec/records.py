"""The spec records registration hooks return: one frozen record per implementation.

A spec names its implementation lazily (`target = "package.module:Object"`), so discovery never
imports heavy code; the host imports a target only once it is selected. Every spec states the
contract version it was written against (`api_version`, required on purpose: a default would
silently claim compatibility with whatever Tenon is installed).

Priority: higher wins among candidates whose capabilities fit; the user's flag (for example
`--attention-backend NAME`) overrides priority. Built-in reference implementations use 0.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

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


class PluginKind(enum.Enum):
    """The extension points; the value is the registration hook's name."""

    PLATFORM = "tenon_platforms"
    MODEL = "tenon_models"
    ATTENTION_BACKEND = "tenon_attention_backends"
    QUANT_SCHEME = "tenon_quant_schemes"
    DRAFTER = "tenon_drafters"
    KV_TIER = "tenon_kv_tiers"
    KV_CONNECTOR = "tenon_kv_connectors"
    MODEL_LOADER = "tenon_model_loaders"
    OP = "tenon_ops"

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", " ")


def _check_target(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    module, _, qualname = value.partition(":")
    if not module or not qualname:
        raise ValueError(f"{attribute.name} must look like 'package.module:Object', got {value!r}")


def _check_name(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if not value or value.strip() != value or " " in value:
        raise ValueError(f"plugin name must be a non-empty word without spaces, got {value!r}")


@attrs.frozen(kw_only=True)
class PluginSpec:
    """Fields every spec carries."""

    name: str = attrs.field(validator=_check_name)
    target: str = attrs.field(validator=_check_target)
    api_version: str
    priority: int = 0
    description: str = ""

    kind: Any = attrs.field(init=False, default=None)  # overridden per subclass


@attrs.frozen(kw_only=True)
class PlatformSpec(PluginSpec):
    """A hardware platform. `probe` names a cheap function returning True when usable here."""

    capabilities: PlatformCapabilities
    probe: str = attrs.field(validator=_check_target)
    kind: PluginKind = attrs.field(init=False, default=PluginKind.PLATFORM)


@attrs.frozen(kw_only=True)
class ModelSpec(PluginSpec):
    capabilities: ModelCapabilities
    kind: PluginKind = attrs.field(init=False, default=PluginKind.MODEL)


@attrs.frozen(kw_only=True)
class AttentionBackendSpec(PluginSpec):
    capabilities: AttentionCapabilities
    kind: PluginKind = attrs.field(init=False, default=PluginKind.ATTENTION_BACKEND)


@attrs.frozen(kw_only=True)
class QuantSchemeSpec(PluginSpec):
    capabilities: QuantCapabilities
    kind: PluginKind = attrs.field(init=False, default=PluginKind.QUANT_SCHEME)


@attrs.frozen(kw_only=True)
class DrafterSpec(PluginSpec):
    capabilities: DrafterCapabilities
    kind: PluginKind = attrs.field(init=False, default=PluginKind.DRAFTER)


@attrs.frozen(kw_only=True)
class KVTierSpec(PluginSpec):
    capabilities: KVTierCapabilities
    kind: PluginKind = attrs.field(init=False, default=PluginKind.KV_TIER)


@attrs.frozen(kw_only=True)
class KVConnectorSpec(PluginSpec):
    """`target` is the scheduler side, `worker_target` the worker side (built separately)."""

    capabilities: KVConnectorCapabilities
    worker_target: str = attrs.field(validator=_check_target)
    kind: PluginKind = attrs.field(init=False, default=PluginKind.KV_CONNECTOR)


@attrs.frozen(kw_only=True)
class ModelLoaderSpec(PluginSpec):
    capabilities: LoaderCapabilities
    kind: PluginKind = attrs.field(init=False, default=PluginKind.MODEL_LOADER)


@attrs.frozen(kw_only=True)
class OpSpec(PluginSpec):
    """One kernel op (`tenon.spec.ops`); `target` names the function, `capabilities.op` the op."""

    capabilities: OpCapabilities
    kind: PluginKind = attrs.field(init=False, default=PluginKind.OP)


SPEC_TYPES: dict[PluginKind, type[PluginSpec]] = {
    PluginKind.PLATFORM: PlatformSpec,
    PluginKind.MODEL: ModelSpec,
    PluginKind.ATTENTION_BACKEND: AttentionBackendSpec,
    PluginKind.QUANT_SCHEME: QuantSchemeSpec,
    PluginKind.DRAFTER: DrafterSpec,
    PluginKind.KV_TIER: KVTierSpec,
    PluginKind.KV_CONNECTOR: KVConnectorSpec,
    PluginKind.MODEL_LOADER: ModelLoaderSpec,
    PluginKind.OP: OpSpec,
}
