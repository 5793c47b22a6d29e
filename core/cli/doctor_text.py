"""The plain-text view of `tenon doctor`'s report: aligned tables, one section per topic."""

from __future__ import annotations

from typing import Any

from tenon.cli.table import format_table


def render_text(report: dict[str, Any], *, verbose: bool = False) -> str:
    lines = [
        f"Tenon plugin contract API {report['api_version']} "
        f"(loads plugins written for API {report['supported_api_versions']})",
        _settings_line(report["settings"]),
    ]
    lines += ["", "Plugins", *_plugins(report["plugins"], verbose)]
    lines += ["", "Specs", *_specs(report["specs"], verbose)]
    lines += ["", "Quarantined specs", *_quarantined(report["quarantined_specs"])]
    if report.get("model") is not None:
        lines += ["", "Model", *_model(report["model"])]
    lines += ["", "Decisions", *_decisions(report["decisions"], verbose)]
    if report["errors"]:
        lines += ["", "Errors (an engine would not start)"]
        lines += [f"  {error}" for error in report["errors"]]
    return "\n".join(lines)


def _value(value: Any) -> str:
    """A capability value: lists as "a,b", None as "any" (capability records' meaning)."""
    if value is None:
        return "any"
    if isinstance(value, list):
        return ",".join(str(item) for item in value) or "none"
    return str(value)


def _label(kind_key: str) -> str:
    return kind_key.replace("_", " ")


def _settings_line(settings: dict[str, Any]) -> str:
    autoload = "on" if settings["autoload"] else "off (TENON_DISABLE_PLUGIN_AUTOLOAD)"
    allowlist = settings["allowlist"]
    allowed = "all" if allowlist is None else (", ".join(allowlist) or "none")
    return f"Third-party plugins: autoload {autoload}; allowed by TENON_PLUGINS: {allowed}"


def _plugins(plugins: list[dict[str, Any]], verbose: bool) -> list[str]:
    rows = [
        [
            plugin["name"],
            plugin["distribution"] or "?",
            plugin["version"] or "?",
            plugin["status"],
            f"{plugin['phase']}: {plugin['error']}" if plugin["error"] else "",
        ]
        for plugin in plugins
    ]
    lines = format_table(["NAME", "DISTRIBUTION", "VERSION", "STATUS", "ERROR"], rows)
    if verbose:
        for plugin in plugins:
            if plugin["traceback"]:
                lines.append(f"  traceback of {plugin['name']}:")
                lines += ["    " + line for line in plugin["traceback"].rstrip().splitlines()]
    return lines


def _specs(specs: dict[str, list[dict[str, Any]]], verbose: bool) -> list[str]:
    rows = [
        [_label(kind), spec["name"], str(spec["priority"]), spec["api_version"], spec["plugin"]]
        + [spec["target"]]
        for kind, entries in specs.items()
        for spec in entries
    ]
    lines = format_table(["KIND", "NAME", "PRIORITY", "API", "PLUGIN", "TARGET"], rows)
    if verbose:
        for kind, entries in specs.items():
            for spec in entries:
                capabilities = ", ".join(
                    f"{key}={_value(value)}" for key, value in spec["capabilities"].items()
                )
                lines.append(f"  {_label(kind)} {spec['name']}: {capabilities}")
    return lines


def _quarantined(entries: list[dict[str, Any]]) -> list[str]:
    rows = [
        [_label(entry["kind"]), entry["name"], entry["plugin"], entry["reason"]]
        for entry in entries
    ]
    return format_table(["KIND", "NAME", "PLUGIN", "REASON"], rows)


def _model(model: dict[str, Any]) -> list[str]:
    shown = {
        "config": model["config_path"],
        "architecture": model["architecture"],
        "dtype": model["dtype"],
        "head size": model["head_size"],
        "sliding window": model["sliding_window"],
        "quantization": model["quantization"] or "none",
        "weights": model["load_format"] or "none found (no loader decision)",
    }
    return [f"  {key}: {value}" for key, value in shown.items()]


def _decisions(decisions: list[dict[str, Any]], verbose: bool) -> list[str]:
    if not decisions:
        return ["  (none)"]
    lines: list[str] = []
    for decision in decisions:
        chosen = decision["chosen"] or "NOTHING FITS"
        request = f" (requested: {decision['requested']})" if decision["requested"] else ""
        lines.append(f"  {_label(decision['kind'])}: {chosen}{request}")
        if decision["problem"]:
            lines.append(f"    problem: {decision['problem']}")
        needs = {k: v for k, v in decision["requirements"].items() if v not in (None, False)}
        if verbose or needs:
            shown = ", ".join(f"{key}={value}" for key, value in needs.items()) or "none"
            lines.append(f"    requirements: {shown}")
        if decision["preferred"]:
            lines.append(f"    preferred: {', '.join(decision['preferred'])}")
        rows = [
            [verdict["name"], verdict["plugin"], "; ".join(verdict["reasons"])]
            for verdict in decision["candidates"]
        ]
        lines += format_table(["CANDIDATE", "PLUGIN", "VERDICT"], rows, indent=4)
    return lines
