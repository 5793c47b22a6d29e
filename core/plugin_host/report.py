"""The host's state as JSON-ready data: plugins, specs, quarantines and decisions.

`tenon doctor --json` prints this; the plain-text view renders the same dictionary, so the two
never disagree. Kinds are keyed by `kind_key(kind)` ("attention_backend", "platform", ...).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from tenon.plugin_host.discovery import AutoloadSettings
from tenon.plugin_host.errors import selection_failure
from tenon.plugin_host.records import (
    CandidateVerdict,
    Decision,
    Origin,
    PluginRecord,
    QuarantinedSpec,
    RegisteredSpec,
)
from tenon.plugin_host.registry import Registry
from tenon.spec import API_VERSION, PluginKind, PluginSpec, supported_range


def kind_key(kind: PluginKind) -> str:
    return kind.name.lower()


def build_report(
    *,
    plugins: Sequence[PluginRecord],
    registry: Registry,
    decisions: Iterable[Decision],
    settings: AutoloadSettings,
    errors: Sequence[str],
) -> dict[str, Any]:
    return {
        "api_version": API_VERSION,
        "supported_api_versions": supported_range(),
        "settings": {
            "autoload": settings.autoload,
            "allowlist": None if settings.allowlist is None else list(settings.allowlist),
        },
        "errors": list(errors),
        "plugins": [plugin_report(record) for record in plugins],
        "specs": {
            kind_key(kind): [spec_report(entry) for entry in registry.specs(kind)]
            for kind in PluginKind
        },
        "quarantined_specs": [quarantined_report(entry) for entry in registry.quarantined],
        "decisions": [decision_report(decision) for decision in decisions],
    }


def plugin_report(record: PluginRecord) -> dict[str, Any]:
    return {
        **_origin(record.origin, name_key="name"),
        "value": record.value,
        "builtin": record.is_builtin,
        "status": record.status.value,
        "phase": record.phase,
        "error": record.error,
        "error_type": record.error_type,
        "error_message": record.error_message,
        "traceback": record.traceback,
    }


def spec_report(entry: RegisteredSpec) -> dict[str, Any]:
    return {**_spec_fields(entry.spec), **_origin(entry.origin)}


def quarantined_report(entry: QuarantinedSpec) -> dict[str, Any]:
    return {
        "kind": kind_key(entry.kind),
        "name": entry.name,
        **_origin(entry.origin),
        "reason": entry.reason,
        "spec": None if entry.spec is None else _spec_fields(entry.spec),
    }


def decision_report(decision: Decision) -> dict[str, Any]:
    chosen = decision.chosen_verdict
    return {
        "kind": kind_key(decision.kind),
        "requested": decision.requested,
        "preferred": list(decision.preferred),
        "requirements": jsonable(attrs.asdict(decision.requirements)),
        "chosen": None if chosen is None else chosen.name,
        "chosen_plugin": None if chosen is None else chosen.origin.plugin,
        "problem": selection_failure(decision),
        "candidates": [_verdict(verdict) for verdict in decision.candidates],
    }


def _verdict(verdict: CandidateVerdict) -> dict[str, Any]:
    return {
        "name": verdict.name,
        **_origin(verdict.origin),
        "accepted": verdict.accepted,
        "taken": verdict.taken,
        "reasons": list(verdict.reasons),
    }


def _origin(origin: Origin, name_key: str = "plugin") -> dict[str, Any]:
    return {name_key: origin.plugin, "distribution": origin.distribution, "version": origin.version}


def _spec_fields(spec: PluginSpec) -> dict[str, Any]:
    fields = jsonable(attrs.asdict(spec))
    fields.pop("kind", None)
    return fields


def jsonable(value: Any) -> Any:
    """Tuples to lists and enums to their key, recursively, so `json.dumps` takes the result."""
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, PluginKind):
        return kind_key(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value
