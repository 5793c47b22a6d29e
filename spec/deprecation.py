"""Deprecations of the plugin API: an old form keeps working, with a warning, until it is removed.

The rule (see `tenon.spec.version`): a change that would break plugins is first made as a
deprecation in a minor release. The old form keeps working, with a `TenonDeprecationWarning`
naming the new form, for at least one minor version and until the next major release, which
removes it; from then on the old form raises a `TypeError` that says what to write instead.
(A plugin written for the old major is quarantined at that release anyway, for its
`api_version`.)

A renamed keyword of a spec record is declared once, in `DEPRECATIONS` (by record name), and
applied to the record with `renamed_fields`:

    @renamed_fields(*DEPRECATIONS["AttentionCapabilities"])
    @attrs.frozen(kw_only=True)
    class AttentionCapabilities: ...
"""

from __future__ import annotations

import functools
import types
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs

from tenon.spec import version

T = TypeVar("T", bound=type)


class TenonDeprecationWarning(DeprecationWarning):
    """A plugin uses a form of the API that a later major release removes."""


def _check_versions(instance: RenamedField, attribute: Any, value: str) -> None:
    deprecated = version.parse(instance.deprecated_in)
    removed = version.parse(value)
    if removed[1] != 0 or removed[0] <= deprecated[0]:
        raise ValueError(
            f"removed_in must be a later major release 'N.0' (deprecated in "
            f"{instance.deprecated_in}), got {value!r}"
        )


@attrs.frozen(kw_only=True)
class RenamedField:
    """Keyword `old` of a record was renamed `new` in API `deprecated_in`."""

    old: str
    new: str
    deprecated_in: str
    removed_in: str = attrs.field(validator=_check_versions)

    def is_removed(self, api_version: str) -> bool:
        return version.parse(api_version) >= version.parse(self.removed_in)

    def translate(self, owner: str, kwargs: dict[str, Any], api_version: str) -> dict[str, Any]:
        """`kwargs` with `old` renamed to `new` (warning), or TypeError once removed."""
        if self.new in kwargs:
            raise TypeError(
                f"{owner}() got both {self.old}= and {self.new}=; {self.old} is the deprecated "
                f"name of {self.new}: pass only {self.new}="
            )
        if self.is_removed(api_version):
            raise TypeError(
                f"{owner}({self.old}=...) was renamed {self.new} in tenon.spec API "
                f"{self.deprecated_in} and removed in API {self.removed_in}: write "
                f"{owner}({self.new}=...)"
            )
        warnings.warn(
            f"{owner}({self.old}=...) is deprecated since tenon.spec API {self.deprecated_in} "
            f"and stops working in API {self.removed_in}: write {owner}({self.new}=...)",
            TenonDeprecationWarning,
            stacklevel=3,  # the plugin's call of the record's constructor
        )
        renamed = dict(kwargs)
        renamed[self.new] = renamed.pop(self.old)
        return renamed


def renamed_fields(*renames: RenamedField) -> Callable[[T], T]:
    """Class decorator: the record's constructor also accepts each rename's `old` keyword."""

    def decorate(record: T) -> T:
        field_names = {field.name for field in attrs.fields(record)}
        for rename in renames:
            if rename.new not in field_names or rename.old in field_names:
                raise ValueError(
                    f"{record.__name__} must have a field {rename.new!r} and none named "
                    f"{rename.old!r} to rename {rename.old} -> {rename.new}"
                )
        original_init = record.__init__  # type: ignore[misc]

        @functools.wraps(original_init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            for rename in renames:
                if rename.old in kwargs:
                    kwargs = rename.translate(record.__name__, kwargs, version.API_VERSION)
            original_init(self, *args, **kwargs)

        record.__init__ = __init__  # type: ignore[misc]
        return record

    return decorate


# Graph capture is not CUDA's alone (HIP graphs, XLA): the capability has the vendor-neutral name,
# and vLLM's spelling is accepted, with a warning, until API 2.0.
CUDA_GRAPHS_RENAME = RenamedField(
    old="supports_cuda_graphs", new="supports_graphs", deprecated_in="1.0", removed_in="2.0"
)

# Every deprecation in force, by the record it applies to.
DEPRECATIONS: Mapping[str, tuple[RenamedField, ...]] = types.MappingProxyType(
    {
        "AttentionCapabilities": (CUDA_GRAPHS_RENAME,),
        "PlatformCapabilities": (CUDA_GRAPHS_RENAME,),
    }
)
