"""`tenon doctor [MODEL_OR_CONFIG]`: which plugins were found, which were quarantined and why,
and, given a model, which implementation would fill each slot and why.

Exit status: 0 when an engine could start with what was found, 1 when it could not (a slot
nothing can fill, TENON_PLUGINS naming a missing plugin, an unknown TENON_* variable), 2 for
a bad argument.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import attrs

from tenon import envs
from tenon.cli.doctor_text import render_text
from tenon.cli.model_facts import DTYPE_ALIASES, ModelFacts, normalize_dtype, read_model_facts
from tenon.plugin_host import Decision, PluginHost, PluginSelectionError, kind_key, load_plugins
from tenon.spec import PlatformSpec, PluginKind, Requirements

DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16", *DTYPE_ALIASES)


@attrs.frozen(kw_only=True)
class DoctorOptions:
    dtype: str | None = None  # None: the model's own
    device: str | None = None  # a device type ("cpu", "cuda"); None: whichever platform probes
    attention_backend: str | None = None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="show plugins, quarantines, and what would fill each slot for a model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "model",
        nargs="?",
        metavar="MODEL_OR_CONFIG",
        help="a local model directory or its config.json (no weights are read)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--verbose", action="store_true", help="add tracebacks, capabilities and requirements"
    )
    parser.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto")
    parser.add_argument("--device", default=None, help="device type, e.g. cpu or cuda")
    parser.add_argument("--attention-backend", default=None, metavar="NAME")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    options = DoctorOptions(
        dtype=normalize_dtype(args.dtype),
        device=args.device,
        attention_backend=args.attention_backend,
    )
    try:
        facts = read_model_facts(args.model) if args.model else None
        host = load_plugins()
    except ValueError as error:
        print(f"tenon doctor: error: {error}", file=sys.stderr)
        return 2
    report = doctor_report(host, facts, options)
    print(json.dumps(report, indent=2) if args.json else render_text(report, verbose=args.verbose))
    blocked = report["errors"] or any(slot["chosen"] is None for slot in report["slots"])
    return 1 if blocked else 0


def doctor_report(
    host: PluginHost, facts: ModelFacts | None, options: DoctorOptions
) -> dict[str, Any]:
    """The host's report, plus the model's facts and the final decision for every slot."""
    slots = resolve_slots(host, facts, options)
    report = host.report()
    report["errors"].extend(_environment_errors())
    report["model"] = None if facts is None else attrs.asdict(facts)
    report["slots"] = [
        {
            "kind": kind_key(decision.kind),
            "chosen": None if decision.chosen is None else decision.chosen.name,
        }
        for decision in slots
    ]
    return report


def resolve_slots(
    host: PluginHost, facts: ModelFacts | None, options: DoctorOptions
) -> list[Decision]:
    """The platform always; with a model, its architecture, attention, quantization, loader."""
    dtype = options.dtype or (facts.dtype if facts else None)
    # The platform is imported (it is light) because it ranks the attention backends.
    platform, platform_decision = _select(
        host, PluginKind.PLATFORM, Requirements(device_type=options.device, dtype=dtype)
    )
    if facts is None:
        return [platform_decision]
    chosen_platform = platform_decision.chosen
    device_type = (
        chosen_platform.capabilities.device_type
        if isinstance(chosen_platform, PlatformSpec)
        else options.device
    )
    preferred = tuple(getattr(platform, "preferred_attention_backends", ()))
    decisions = [
        platform_decision,
        host.resolve(
            PluginKind.MODEL,
            Requirements(
                architecture=facts.architecture, dtype=dtype, quantization=facts.quantization
            ),
        ),
        host.resolve(
            PluginKind.ATTENTION_BACKEND,
            Requirements(
                device_type=device_type,
                dtype=dtype,
                head_size=facts.head_size,
                sliding_window=facts.sliding_window,
            ),
            requested=options.attention_backend,
            preferred=preferred,
        ),
        host.resolve(
            PluginKind.QUANT_SCHEME,
            Requirements(quantization=facts.quantization, device_type=device_type, dtype=dtype),
        ),
    ]
    if facts.load_format is not None:
        decisions.append(
            host.resolve(PluginKind.MODEL_LOADER, Requirements(load_format=facts.load_format))
        )
    return decisions


def _select(
    host: PluginHost, kind: PluginKind, requirements: Requirements
) -> tuple[Any | None, Decision]:
    try:
        return host.select(kind, requirements)
    except PluginSelectionError as error:
        return None, error.decision


def _environment_errors() -> list[str]:
    try:
        envs.check_environment()
    except ValueError as error:
        return [str(error)]
    return []
