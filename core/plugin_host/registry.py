"""The registry: every spec the loaded plugins declared, per kind, with where it came from.

Built by calling each registration hook once per plugin (keyword arguments only, through a
pluggy subset caller so the plugin's own wrappers still apply), which lets a failure be pinned
on the plugin that caused it:
- a hook that raises quarantines its plugin, and every spec that plugin returned is dropped;
- a returned object that is not the kind's spec type, a spec written for an unsupported
  `api_version`, or a name already taken within the kind quarantines just that spec.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Any

import attrs
import pluggy

from tenon.plugin_host.discovery import quarantine
from tenon.plugin_host.records import (
    Origin,
    PluginRecord,
    PluginStatus,
    QuarantinedSpec,
    RegisteredSpec,
)
from tenon.spec import PluginKind, PluginSpec, unsupported_reason
from tenon.spec.records import SPEC_TYPES


@attrs.define
class Registry:
    """Accepted specs in registration order, and everything quarantined along the way."""

    entries: dict[PluginKind, list[RegisteredSpec]] = attrs.field(
        factory=lambda: {kind: [] for kind in PluginKind}
    )
    quarantined: list[QuarantinedSpec] = attrs.field(factory=list)

    def specs(self, kind: PluginKind) -> tuple[RegisteredSpec, ...]:
        return tuple(self.entries[kind])

    def quarantined_for(self, kind: PluginKind) -> tuple[QuarantinedSpec, ...]:
        return tuple(entry for entry in self.quarantined if entry.kind is kind)

    def find(self, kind: PluginKind, spec: PluginSpec) -> RegisteredSpec | None:
        """The accepted entry holding `spec`; None once it has been quarantined."""
        return next((entry for entry in self.entries[kind] if entry.spec is spec), None)

    def quarantine(self, entry: RegisteredSpec, reason: str) -> None:
        """Move an accepted spec to quarantine (its implementation failed to import)."""
        kind = entry.spec.kind
        self.entries[kind].remove(entry)
        self.quarantined.append(
            QuarantinedSpec(
                kind=kind, name=entry.spec.name, origin=entry.origin, reason=reason, spec=entry.spec
            )
        )

    def admit(self, kind: PluginKind, returned: object, origin: Origin) -> None:
        """Accept one returned object into `kind`, or quarantine it with the reason."""
        reason = _rejection(kind, returned, self.entries[kind], origin)
        if reason is None:
            assert isinstance(returned, PluginSpec)
            self.entries[kind].append(RegisteredSpec(spec=returned, origin=origin))
            return
        self.quarantined.append(
            QuarantinedSpec(
                kind=kind,
                name=_describe(returned),
                origin=origin,
                reason=reason,
                spec=returned if isinstance(returned, PluginSpec) else None,
            )
        )


def build_registry(
    pm: pluggy.PluginManager, plugins: Sequence[PluginRecord]
) -> tuple[Registry, list[PluginRecord]]:
    """Call every registration hook of every loaded plugin, in discovery order.

    Returns the registry and the plugin records, with those whose hook raised quarantined (and
    unregistered, so later hooks such as `tenon_configure` skip them too).
    """
    registry = Registry()
    records: list[PluginRecord] = []
    for record in plugins:
        if record.status is not PluginStatus.LOADED:
            records.append(record)
            continue
        plugin = pm.get_plugin(record.name)
        others = [other for _, other in pm.list_name_plugin() if other is not plugin]
        returned: list[tuple[PluginKind, Any]] = []
        phase = ""
        try:
            for kind in PluginKind:
                phase = f"{kind.value}()"
                for result in pm.subset_hook_caller(kind.value, remove_plugins=others)():
                    returned.extend((kind, item) for item in _as_items(result))
        except Exception as error:  # a plugin's hook may fail in any way; drop just that plugin
            pm.unregister(plugin)
            records.append(quarantine(record, phase, error))
            continue
        for kind, item in returned:
            registry.admit(kind, item, record.origin)
        records.append(record)
    return registry, records


@attrs.frozen
class _NotASequence:
    """Stands for a hook result that was not a list or tuple, so it is quarantined as such."""

    result: object


def _as_items(result: object) -> list[object]:
    if isinstance(result, list | tuple):
        return list(result)
    return [_NotASequence(result)]


def _rejection(
    kind: PluginKind, returned: object, accepted: Sequence[RegisteredSpec], origin: Origin
) -> str | None:
    spec_type = SPEC_TYPES[kind]
    if isinstance(returned, _NotASequence):
        return (
            f"{kind.value}() must return a list or tuple of {spec_type.__name__}, "
            f"got {type(returned.result).__name__}"
        )
    if not isinstance(returned, spec_type):
        return f"{kind.value}() returned {type(returned).__name__}, expected {spec_type.__name__}"
    reason = unsupported_reason(returned.api_version)
    if reason is not None:
        return reason
    capabilities_type = typing.get_type_hints(spec_type)["capabilities"]
    capabilities = getattr(returned, "capabilities", None)
    if not isinstance(capabilities, capabilities_type):
        return (
            f"capabilities must be {capabilities_type.__name__}, got {type(capabilities).__name__}"
        )
    for entry in accepted:
        if entry.spec.name == returned.name:
            return (
                f"name conflict: {kind.label} {returned.name!r} from "
                f"{origin.describe()} is already registered by "
                f"{entry.origin.describe()}; the later registration is ignored"
            )
    return None


def _describe(returned: object) -> str:
    if isinstance(returned, _NotASequence):
        returned = returned.result
    name = getattr(returned, "name", None)
    return name if isinstance(name, str) else f"<{type(returned).__name__}>"
