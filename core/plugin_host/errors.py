"""Errors the plugin host raises at engine start, with messages that say what to change."""

from __future__ import annotations

from collections.abc import Sequence

from tenon.plugin_host.records import Decision, PluginRecord
from tenon.plugin_host.resolver import describe_request


class PluginSelectionError(RuntimeError):
    """No implementation can fill a slot, or the one the user asked for by name cannot be used.

    The message lists every candidate and why it was rejected, then the quarantined plugins
    (one of them may have been meant to fill the slot).
    """

    def __init__(
        self, decision: Decision, quarantined_plugins: Sequence[PluginRecord] = ()
    ) -> None:
        assert decision.chosen is None, "a decision that chose something is not an error"
        self.decision = decision
        self.quarantined_plugins = tuple(quarantined_plugins)
        headline = selection_failure(decision) or ""
        super().__init__(_format_selection_error(headline, decision, self.quarantined_plugins))


def _format_selection_error(
    headline: str, decision: Decision, quarantined_plugins: Sequence[PluginRecord]
) -> str:
    lines = [headline, f"{decision.kind.label} candidates:"]
    if not decision.candidates:
        lines.append("  (none registered)")
    for verdict in decision.candidates:
        reasons = "; ".join(verdict.reasons)
        lines.append(f"  {verdict.name} from {verdict.origin.describe()}: {reasons}")
    if quarantined_plugins:
        lines.append("quarantined plugins (one of them may have provided it):")
        for record in quarantined_plugins:
            lines.append(f"  {record.origin.describe()}: {record.error}")
    lines.append("run `tenon doctor` for details")
    return "\n".join(lines)


def selection_failure(decision: Decision) -> str | None:
    """Why a decision cannot be used, in one line; None when something was chosen."""
    if decision.chosen is not None:
        return None
    label = decision.kind.label
    requested = decision.requested
    if requested is None:
        return f"no {label} can serve this configuration"
    request = describe_request(decision.kind, requested)
    if all(verdict.name != requested for verdict in decision.candidates):
        return f"no {label} named {requested!r} is registered ({request})"
    return f"the requested {label} {requested!r} cannot be used ({request})"


class PluginAllowlistError(ValueError):
    """TENON_PLUGINS names an entry point that no installed distribution publishes."""

    def __init__(self, unknown_names: Sequence[str], available_names: Sequence[str]) -> None:
        self.unknown_names = tuple(unknown_names)
        self.available_names = tuple(available_names)
        available = ", ".join(self.available_names) or "none"
        super().__init__(
            f"TENON_PLUGINS names {', '.join(self.unknown_names)}, which no installed plugin "
            f"provides; available plugin names: {available}. Fix the spelling or install the "
            "plugin's package."
        )
