"""The base of every conformance suite, and a runner for using one without pytest.

A suite is a class of `test_*` methods. A plugin author subclasses it, sets a few class
attributes (the implementation, what it declares), and names the subclass `Test...` so pytest
collects the inherited tests:

    class TestMyBackend(AttentionBackendConformance):
        backend_class = MyBackend

Test methods take only the suite's own parameters (`parameters()`, expanded by pytest through
the class's `pytest_generate_tests`), never pytest fixtures, so `run_conformance(TestMyBackend)`
can run the same checks in a plain script or a notebook.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import attrs
import pytest

T = TypeVar("T")


class ConformanceSuite:
    """Parameters, and state shared by every test of one suite class (built once, on demand)."""

    def parameters(self) -> Mapping[str, Sequence[Any]]:
        """Argument name -> the values every test taking that argument runs with."""
        return {}

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        for name, values in self.parameters().items():
            if name in metafunc.fixturenames:
                metafunc.parametrize(name, list(values), ids=[_label(v) for v in values])

    def shared(self, key: str, build: Callable[[], T]) -> T:
        """`build()` once per suite class (pytest makes a new instance for every test)."""
        suite_class = type(self)
        cache: dict[str, Any] | None = vars(suite_class).get("_conformance_cache")
        if cache is None:
            cache = {}
            # Kept on the subclass itself, so two suites never share an entry.
            setattr(suite_class, "_conformance_cache", cache)  # noqa: B010 - not a declared field
        if key not in cache:
            cache[key] = build()
        value: T = cache[key]
        return value


@attrs.frozen(kw_only=True)
class CheckResult:
    name: str  # "test_decode_only[float16]"
    outcome: str  # "passed", "skipped" or "failed"
    detail: str = ""  # the skip reason or the failure


@attrs.frozen(kw_only=True)
class SuiteReport:
    suite: str
    results: tuple[CheckResult, ...]

    def names(self, outcome: str) -> list[str]:
        return [result.name for result in self.results if result.outcome == outcome]

    @property
    def failed(self) -> list[CheckResult]:
        return [result for result in self.results if result.outcome == "failed"]

    def summary(self) -> str:
        counts = {o: len(self.names(o)) for o in ("passed", "skipped", "failed")}
        lines = [f"{self.suite}: " + ", ".join(f"{n} {o}" for o, n in counts.items())]
        lines += [
            f"  {r.outcome} {r.name}: {r.detail}" for r in self.results if r.outcome != "passed"
        ]
        return "\n".join(lines)


def run_conformance(suite_class: type[ConformanceSuite], *, check: bool = True) -> SuiteReport:
    """Run every test of `suite_class` with each of its parameter combinations, in the order the
    tests are defined. With `check`, raise AssertionError listing the failures, if any."""
    suite = suite_class()
    parameters = suite.parameters()
    results: list[CheckResult] = []
    for name in _test_names(suite_class):
        method = getattr(suite, name)
        arguments = list(inspect.signature(method).parameters)
        unknown = [argument for argument in arguments if argument not in parameters]
        if unknown:
            raise TypeError(
                f"{suite_class.__name__}.{name} takes {', '.join(unknown)}, which are not "
                "parameters of the suite; run_conformance supplies only `parameters()`"
            )
        for values in itertools.product(*(parameters[argument] for argument in arguments)):
            label = f"{name}[{'-'.join(_label(v) for v in values)}]" if arguments else name
            results.append(_run_one(label, method, dict(zip(arguments, values, strict=True))))
    report = SuiteReport(suite=suite_class.__name__, results=tuple(results))
    if check and report.failed:
        raise AssertionError(report.summary())
    return report


def _run_one(label: str, method: Callable[..., None], arguments: dict[str, Any]) -> CheckResult:
    try:
        method(**arguments)
    except pytest.skip.Exception as skipped:
        return CheckResult(name=label, outcome="skipped", detail=str(skipped.msg))
    except (Exception, pytest.fail.Exception) as error:  # a failed check, whatever it raised
        return CheckResult(name=label, outcome="failed", detail=f"{type(error).__name__}: {error}")
    return CheckResult(name=label, outcome="passed")


def _test_names(suite_class: type) -> list[str]:
    names: list[str] = []
    for klass in reversed(suite_class.__mro__):
        for name in vars(klass):
            if name.startswith("test_") and name not in names:
                names.append(name)
    # A subclass turns an inherited test off by setting it to None.
    return [name for name in names if callable(getattr(suite_class, name))]


def _label(value: Any) -> str:
    if isinstance(value, tuple):
        return "x".join(str(item) for item in value)
    return str(value)
