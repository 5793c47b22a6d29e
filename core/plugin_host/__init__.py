"""The plugin host: discovery, quarantine, the registry of specs, and the resolver.

`load_plugins()` builds a `PluginHost`; there is no module-level plugin manager. See
`tenon.plugin_host.host` for how the engine uses it and `tenon doctor` for what it reports.
"""

from tenon.plugin_host.discovery import AutoloadSettings
from tenon.plugin_host.entry_points import EntryPointLike, StaticEntryPoint
from tenon.plugin_host.errors import PluginAllowlistError, PluginSelectionError
from tenon.plugin_host.host import PluginHost, load_plugins, make_plugin_manager
from tenon.plugin_host.records import (
    CandidateVerdict,
    Decision,
    Origin,
    PluginRecord,
    PluginStatus,
    QuarantinedSpec,
    RegisteredSpec,
)
from tenon.plugin_host.report import kind_key

__all__ = [
    "AutoloadSettings",
    "CandidateVerdict",
    "Decision",
    "EntryPointLike",
    "Origin",
    "PluginAllowlistError",
    "PluginHost",
    "PluginRecord",
    "PluginSelectionError",
    "PluginStatus",
    "QuarantinedSpec",
    "RegisteredSpec",
    "StaticEntryPoint",
    "kind_key",
    "load_plugins",
    "make_plugin_manager",
]
