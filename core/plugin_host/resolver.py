"""The resolver: fill one slot from the registry and say why each candidate was (not) taken.

For each candidate, in order:
1. quarantined specs are listed, rejected, with their quarantine reason;
2. when the user requested a name (`--attention-backend NAME`), every other name is rejected;
3. capabilities are matched against the requirements (every unmet one is a reason);
4. platforms that passed run their probe.
The eligible ones are ordered by `preferred` (the platform's ranking) first, then priority
(higher first), then name; the first is taken.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping, Sequence

from tenon.plugin_host.records import CandidateVerdict, Decision, QuarantinedSpec, RegisteredSpec
from tenon.spec import PlatformSpec, PluginKind, PluginSpec, Requirements

REQUEST_FLAGS: Mapping[PluginKind, str] = types.MappingProxyType(
    {
        PluginKind.ATTENTION_BACKEND: "--attention-backend",
        PluginKind.QUANT_SCHEME: "--quantization",
        PluginKind.MODEL_LOADER: "--load-format",
    }
)

# Returns None when the platform is usable, else the reason it is not.
ProbeRunner = Callable[[PlatformSpec], str | None]


def describe_request(kind: PluginKind, requested: str) -> str:
    """ "--attention-backend=xyz", or "'xyz' was requested" for kinds without a flag."""
    flag = REQUEST_FLAGS.get(kind)
    return f"{flag}={requested}" if flag else f"{requested!r} was requested"


def resolve(
    kind: PluginKind,
    requirements: Requirements,
    entries: Sequence[RegisteredSpec],
    quarantined: Sequence[QuarantinedSpec],
    *,
    requested: str | None,
    preferred: Sequence[str],
    probe: ProbeRunner,
) -> Decision:
    preferred = tuple(preferred)
    eligible: list[RegisteredSpec] = []
    rejected: list[CandidateVerdict] = []
    for entry in entries:
        reasons = _static_rejections(kind, entry.spec, requirements, requested)
        if not reasons and isinstance(entry.spec, PlatformSpec):
            probe_reason = probe(entry.spec)
            reasons = () if probe_reason is None else (f"rejected: {probe_reason}",)
        if reasons:
            rejected.append(_verdict(entry, accepted=False, taken=False, reasons=reasons))
        else:
            eligible.append(entry)
    rejected.extend(
        CandidateVerdict(
            name=entry.name,
            origin=entry.origin,
            accepted=False,
            taken=False,
            reasons=(f"rejected: quarantined: {entry.reason}",),
        )
        for entry in quarantined
    )
    eligible.sort(key=lambda entry: _order_key(entry.spec, preferred))
    accepted = [
        _verdict(
            entry,
            accepted=True,
            taken=index == 0,
            reasons=(
                _why_taken(kind, eligible, requested, preferred)
                if index == 0
                else _why_not_taken(entry.spec, eligible[0].spec, preferred),
            ),
        )
        for index, entry in enumerate(eligible)
    ]
    return Decision(
        kind=kind,
        requirements=requirements,
        requested=requested,
        preferred=preferred,
        chosen=eligible[0].spec if eligible else None,
        candidates=tuple(accepted + rejected),
    )


def _static_rejections(
    kind: PluginKind, spec: PluginSpec, requirements: Requirements, requested: str | None
) -> tuple[str, ...]:
    reasons: list[str] = []
    if requested is not None and spec.name != requested:
        reasons.append(f"rejected: not requested ({describe_request(kind, requested)})")
    # Every concrete spec type declares `capabilities`; the shared base record does not.
    capabilities = getattr(spec, "capabilities")  # noqa: B009
    unmet: tuple[str, ...] = capabilities.unmet(requirements)
    reasons.extend(f"rejected: {reason}" for reason in unmet)
    return tuple(reasons)


def _order_key(spec: PluginSpec, preferred: tuple[str, ...]) -> tuple[int, int, str]:
    rank = preferred.index(spec.name) if spec.name in preferred else len(preferred)
    return rank, -spec.priority, spec.name


def _why_taken(
    kind: PluginKind,
    eligible: Sequence[RegisteredSpec],
    requested: str | None,
    preferred: tuple[str, ...],
) -> str:
    chosen = eligible[0].spec
    if requested is not None:
        return f"taken: requested ({describe_request(kind, requested)})"
    if chosen.name in preferred:
        return f"taken: preferred ({', '.join(preferred)})"
    if len(eligible) == 1:
        return f"taken: only eligible candidate (priority {chosen.priority})"
    reason = f"taken: highest priority ({chosen.priority}) among {len(eligible)} eligible"
    if eligible[1].spec.priority == chosen.priority:
        reason += ", first by name"
    return reason


def _why_not_taken(spec: PluginSpec, chosen: PluginSpec, preferred: tuple[str, ...]) -> str:
    if chosen.name in preferred:
        if spec.name in preferred:
            return f"eligible, later in preferred order ({', '.join(preferred)})"
        return f"eligible, not preferred ({', '.join(preferred)})"
    if spec.priority < chosen.priority:
        return f"eligible, lower priority ({spec.priority})"
    return f"eligible, same priority ({spec.priority}), later by name"


def _verdict(
    entry: RegisteredSpec, *, accepted: bool, taken: bool, reasons: tuple[str, ...]
) -> CandidateVerdict:
    return CandidateVerdict(
        name=entry.spec.name, origin=entry.origin, accepted=accepted, taken=taken, reasons=reasons
    )
