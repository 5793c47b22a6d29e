"""The records the plugin host keeps: where each plugin came from, what it registered, what
was quarantined, and every selection decision with its reasons.

All frozen: the host replaces a record (for example when a plugin is quarantined) rather than
changing it, so a report taken earlier stays true to what it saw.
"""

from __future__ import annotations

import enum

import attrs

from tenon.spec import PluginKind, PluginSpec, Requirements


class PluginStatus(enum.Enum):
    LOADED = "loaded"
    QUARANTINED = "quarantined"
    SKIPPED_BY_ALLOWLIST = "skipped-by-allowlist"  # TENON_PLUGINS does not name it
    SKIPPED_AUTOLOAD_DISABLED = "skipped-autoload-disabled"  # TENON_DISABLE_PLUGIN_AUTOLOAD


@attrs.frozen(kw_only=True)
class Origin:
    """The entry point a spec came from, and the distribution that published it."""

    plugin: str  # the entry-point name, also the plugin's name in the plugin manager
    distribution: str | None
    version: str | None

    def describe(self) -> str:
        """For messages: "plugin example-good (tenon-example-good 0.3.1)"."""
        distribution = self.distribution or "unknown distribution"
        version = f" {self.version}" if self.version else ""
        return f"plugin {self.plugin} ({distribution}{version})"


@attrs.frozen(kw_only=True)
class PluginRecord:
    """One discovered entry point and what became of it."""

    origin: Origin
    value: str | None  # the entry point's "package.module" (or "package.module:object")
    is_builtin: bool  # published by the `tenon` distribution: always loaded
    status: PluginStatus
    phase: str | None = None  # where it was quarantined: "import", "register", "tenon_models()"
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None

    @property
    def name(self) -> str:
        return self.origin.plugin

    @property
    def error(self) -> str | None:
        """Type and message ("ImportError: No module named 'x'"); None when nothing failed."""
        if self.error_type is None:
            return None
        return f"{self.error_type}: {self.error_message}"


@attrs.frozen(kw_only=True)
class RegisteredSpec:
    """A spec a plugin returned from a registration hook, accepted into the registry."""

    spec: PluginSpec
    origin: Origin


@attrs.frozen(kw_only=True)
class QuarantinedSpec:
    """Something a registration hook returned that cannot be used, and why."""

    kind: PluginKind
    name: str  # the spec's name, or a description of the object when it was not a spec
    origin: Origin
    reason: str
    spec: PluginSpec | None = None  # None when the hook returned something other than a spec


@attrs.frozen(kw_only=True)
class CandidateVerdict:
    """Why one candidate was taken, left eligible, or rejected for a slot."""

    name: str
    origin: Origin
    accepted: bool  # passed every filter: it could fill the slot
    taken: bool  # it is the one chosen
    reasons: tuple[str, ...]


@attrs.frozen(kw_only=True)
class Decision:
    """The resolver's answer for one slot: what was chosen (None: nothing fits) and why."""

    kind: PluginKind
    requirements: Requirements
    requested: str | None
    preferred: tuple[str, ...]
    chosen: PluginSpec | None
    candidates: tuple[CandidateVerdict, ...]

    @property
    def chosen_verdict(self) -> CandidateVerdict | None:
        return next((verdict for verdict in self.candidates if verdict.taken), None)
