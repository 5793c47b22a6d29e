"""Discovery: read the entry points, honour the environment, import and register each plugin.

Built-in entry points (the `tenon` distribution's own) always load. Third-party ones:
- `TENON_DISABLE_PLUGIN_AUTOLOAD=1` (or `true`) skips them all, like pytest's switch;
- `TENON_PLUGINS=a,b` loads only the named ones, like vLLM's `VLLM_PLUGINS` (set but empty:
  none); a name no entry point has is an error the host reports, fatal at engine start.
A plugin whose import raises, whose registration pluggy refuses, or that implements a hook
that does not exist (`check_pending`, a misspelling) is quarantined; the rest keep working.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Mapping, Sequence

import attrs
import pluggy

from tenon.plugin_host.entry_points import EntryPointLike, is_builtin, normalize_distribution_name
from tenon.plugin_host.records import Origin, PluginRecord, PluginStatus

_TRUE_VALUES = ("1", "true")
_FALSE_VALUES = ("", "0", "false")


@attrs.frozen(kw_only=True)
class AutoloadSettings:
    """The two environment switches, parsed and checked."""

    autoload: bool = True
    allowlist: tuple[str, ...] | None = None  # None: TENON_PLUGINS unset, every plugin loads

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> AutoloadSettings:
        disable = environ.get("TENON_DISABLE_PLUGIN_AUTOLOAD", "").strip().lower()
        if disable not in _TRUE_VALUES + _FALSE_VALUES:
            raise ValueError(
                f"TENON_DISABLE_PLUGIN_AUTOLOAD={disable!r} is not understood; set it to 1 or "
                "true to turn off third-party plugins, or 0, false or nothing to load them"
            )
        allowlist = None
        if "TENON_PLUGINS" in environ:
            names = (name.strip() for name in environ["TENON_PLUGINS"].split(","))
            allowlist = tuple(name for name in names if name)
        return cls(autoload=disable not in _TRUE_VALUES, allowlist=allowlist)


@attrs.frozen(kw_only=True)
class Discovery:
    plugins: tuple[PluginRecord, ...]
    unknown_allowlist_names: tuple[str, ...]  # in TENON_PLUGINS, but no entry point has them
    available_names: tuple[str, ...]  # every entry-point name found, sorted


def discover(
    pm: pluggy.PluginManager, entry_points: Iterable[EntryPointLike], settings: AutoloadSettings
) -> Discovery:
    """Import and register every entry point the settings allow; quarantine the failures."""
    found = list(entry_points)
    # Built-ins first, so that a third party can never take a built-in's name.
    builtins = [ep for ep in found if is_builtin(ep)]
    third_party = sorted(
        (ep for ep in found if not is_builtin(ep)), key=lambda ep: (_distribution_key(ep), ep.name)
    )
    records = [
        _record(ep, status) if (status := _skip_status(ep, settings)) else _load(pm, ep)
        for ep in builtins + third_party
    ]
    records = _quarantine_invalid_hooks(pm, records)
    names = {ep.name for ep in found}
    unknown = tuple(name for name in settings.allowlist or () if name not in names)
    return Discovery(
        plugins=tuple(records),
        unknown_allowlist_names=unknown,
        available_names=tuple(sorted(names)),
    )


def origin_of(entry_point: EntryPointLike) -> Origin:
    dist = entry_point.dist
    return Origin(
        plugin=entry_point.name,
        distribution=dist.name if dist is not None else None,
        version=dist.version if dist is not None else None,
    )


def quarantine(record: PluginRecord, phase: str, error: BaseException) -> PluginRecord:
    """The record, quarantined with the error (call inside the `except` for the traceback)."""
    return attrs.evolve(
        record,
        status=PluginStatus.QUARANTINED,
        phase=phase,
        error_type=type(error).__name__,
        error_message=str(error),
        traceback=traceback.format_exc(),
    )


def _distribution_key(entry_point: EntryPointLike) -> str:
    dist = entry_point.dist
    return normalize_distribution_name(dist.name) if dist is not None else ""


def _skip_status(entry_point: EntryPointLike, settings: AutoloadSettings) -> PluginStatus | None:
    if is_builtin(entry_point):
        return None
    if not settings.autoload:
        return PluginStatus.SKIPPED_AUTOLOAD_DISABLED
    if settings.allowlist is not None and entry_point.name not in settings.allowlist:
        return PluginStatus.SKIPPED_BY_ALLOWLIST
    return None


def _record(entry_point: EntryPointLike, status: PluginStatus) -> PluginRecord:
    return PluginRecord(
        origin=origin_of(entry_point),
        value=getattr(entry_point, "value", None),
        is_builtin=is_builtin(entry_point),
        status=status,
    )


def _load(pm: pluggy.PluginManager, entry_point: EntryPointLike) -> PluginRecord:
    record = _record(entry_point, PluginStatus.LOADED)
    try:
        plugin = entry_point.load()
    except Exception as error:  # a plugin's import may fail in any way; it must not stop us
        return quarantine(record, "import", error)
    try:
        hash(plugin)  # pluggy keeps plugins in sets; an unhashable one would break every call
        pm.register(plugin, name=entry_point.name)
    except Exception as error:  # duplicate name, or a hookimpl whose arguments the spec lacks
        # pluggy may have registered part of the plugin before refusing it.
        if pm.get_plugin(entry_point.name) is plugin:
            pm.unregister(plugin)
        return quarantine(record, "register", error)
    return record


def _quarantine_invalid_hooks(
    pm: pluggy.PluginManager, records: Sequence[PluginRecord]
) -> list[PluginRecord]:
    """`check_pending` raises on the first plugin with an unknown hook: drop it and look again."""
    by_name = {record.name: record for record in records if record.status is PluginStatus.LOADED}
    while True:
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as error:
            name = pm.get_name(error.plugin)
            assert name in by_name, f"check_pending blamed an unknown plugin {error.plugin!r}"
            pm.unregister(error.plugin)
            by_name[name] = quarantine(by_name[name], "hook validation", error)
        else:
            break
    return [
        by_name[record.name] if record.status is PluginStatus.LOADED else record
        for record in records
    ]
