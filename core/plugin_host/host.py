"""The plugin host: one object per process holding the plugin manager, the registry, and every
selection decision. Built by `load_plugins()`; never a module-level global.

    host = load_plugins()
    backend_cls, decision = host.select(PluginKind.ATTENTION_BACKEND, requirements,
                                        requested=args.attention_backend,
                                        preferred=platform.preferred_attention_backends)
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pluggy

from tenon.plugin_host.discovery import AutoloadSettings, Discovery, discover
from tenon.plugin_host.entry_points import EntryPointLike
from tenon.plugin_host.errors import PluginAllowlistError, PluginSelectionError
from tenon.plugin_host.records import (
    Decision,
    PluginRecord,
    PluginStatus,
    QuarantinedSpec,
    RegisteredSpec,
)
from tenon.plugin_host.registry import Registry, build_registry
from tenon.plugin_host.report import build_report
from tenon.plugin_host.resolver import resolve
from tenon.plugin_host.targets import import_target, run_probe
from tenon.spec import ENTRY_POINT_GROUP, PROJECT_NAME, PlatformSpec, PluginKind, Requirements
from tenon.spec import hookspecs as tenon_hookspecs


def make_plugin_manager() -> pluggy.PluginManager:
    """A fresh plugin manager for the `tenon` project with its hook specs added."""
    plugin_manager = pluggy.PluginManager(PROJECT_NAME)
    plugin_manager.add_hookspecs(tenon_hookspecs)
    return plugin_manager


def load_plugins(
    *,
    environ: Mapping[str, str] | None = None,
    entry_points: Iterable[EntryPointLike] | None = None,
) -> PluginHost:
    """Discover, import and register plugins, then build the registry from their hooks.

    `environ` defaults to `os.environ` (read for TENON_PLUGINS and
    TENON_DISABLE_PLUGIN_AUTOLOAD); `entry_points` defaults to the installed entry points of the
    group "tenon.plugins".
    """
    settings = AutoloadSettings.from_environ(os.environ if environ is None else environ)
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    plugin_manager = make_plugin_manager()
    discovery = discover(plugin_manager, entry_points, settings)
    registry, plugins = build_registry(plugin_manager, discovery.plugins)
    return PluginHost(
        plugin_manager=plugin_manager,
        settings=settings,
        discovery=discovery,
        plugins=plugins,
        registry=registry,
    )


class PluginHost:
    """Discovered plugins, the registry of their specs, and the decisions made from it."""

    def __init__(
        self,
        *,
        plugin_manager: pluggy.PluginManager,
        settings: AutoloadSettings,
        discovery: Discovery,
        plugins: Sequence[PluginRecord],
        registry: Registry,
    ) -> None:
        self.plugin_manager = plugin_manager
        self.settings = settings
        self._discovery = discovery
        self._plugins = tuple(plugins)
        self._registry = registry
        self._decisions: list[Decision] = []
        self._probe_results: dict[str, str | None] = {}  # probe target -> reason it failed

    # --- What was found -------------------------------------------------------------------

    @property
    def plugins(self) -> tuple[PluginRecord, ...]:
        return self._plugins

    @property
    def quarantined_plugins(self) -> tuple[PluginRecord, ...]:
        return tuple(p for p in self._plugins if p.status is PluginStatus.QUARANTINED)

    def specs(self, kind: PluginKind) -> tuple[RegisteredSpec, ...]:
        return self._registry.specs(kind)

    @property
    def quarantined_specs(self) -> tuple[QuarantinedSpec, ...]:
        return tuple(self._registry.quarantined)

    @property
    def decisions(self) -> tuple[Decision, ...]:
        """Every decision `resolve` made, in order (a fallback adds the re-resolved one)."""
        return tuple(self._decisions)

    @property
    def errors(self) -> tuple[str, ...]:
        """Problems that stop an engine from starting (see `check_allowlist`)."""
        try:
            self.check_allowlist()
        except PluginAllowlistError as error:
            return (str(error),)
        return ()

    def check_allowlist(self) -> None:
        """Raise `PluginAllowlistError` when TENON_PLUGINS names a plugin nobody provides."""
        if self._discovery.unknown_allowlist_names:
            raise PluginAllowlistError(
                self._discovery.unknown_allowlist_names, self._discovery.available_names
            )

    # --- Selection ------------------------------------------------------------------------

    def resolve(
        self,
        kind: PluginKind,
        requirements: Requirements,
        *,
        requested: str | None = None,
        preferred: Sequence[str] = (),
    ) -> Decision:
        """Choose an implementation for `kind` (imports nothing but platform probes)."""
        decision = resolve(
            kind,
            requirements,
            self._registry.specs(kind),
            self._registry.quarantined_for(kind),
            requested=requested,
            preferred=preferred,
            probe=self._probe,
        )
        self._decisions.append(decision)
        return decision

    def load(self, decision: Decision) -> Any:
        """Import the chosen target; on failure quarantine it and fall back (see `select`)."""
        loaded, _ = self._load_with_fallback(decision)
        return loaded

    def select(
        self,
        kind: PluginKind,
        requirements: Requirements,
        requested: str | None = None,
        preferred: Sequence[str] = (),
    ) -> tuple[Any, Decision]:
        """Resolve and import. If the chosen target fails to import it is quarantined and the
        next candidate is tried, unless it was requested by name; when nothing is left,
        `PluginSelectionError` lists every candidate and why it was rejected."""
        decision = self.resolve(kind, requirements, requested=requested, preferred=preferred)
        return self._load_with_fallback(decision)

    def configure(self, config: Any) -> None:
        """Run every loaded plugin's `tenon_configure(config=...)` (may raise ValueError)."""
        self.plugin_manager.hook.tenon_configure(config=config)

    def report(self) -> dict[str, Any]:
        """Everything above as JSON-ready data (what `tenon doctor --json` prints)."""
        return build_report(
            plugins=self._plugins,
            registry=self._registry,
            decisions=self._decisions,
            settings=self.settings,
            errors=self.errors,
        )

    # --- Internals ------------------------------------------------------------------------

    def _probe(self, spec: PlatformSpec) -> str | None:
        if spec.probe not in self._probe_results:
            self._probe_results[spec.probe] = run_probe(spec)
        return self._probe_results[spec.probe]

    def _load_with_fallback(self, decision: Decision) -> tuple[Any, Decision]:
        while True:
            if decision.chosen is None:
                raise PluginSelectionError(decision, self.quarantined_plugins)
            entry = self._registry.find(decision.kind, decision.chosen)
            if entry is not None:
                try:
                    return import_target(entry.spec.target), decision
                except Exception as error:  # any failure at import rules the target out
                    self._registry.quarantine(
                        entry,
                        f"failed to import {entry.spec.target}: {type(error).__name__}: {error}",
                    )
            decision = self.resolve(
                decision.kind,
                decision.requirements,
                requested=decision.requested,
                preferred=decision.preferred,
            )
