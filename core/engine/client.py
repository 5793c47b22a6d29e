"""The frontend's view of the engine core: an interface that hides where the core runs.

`InProcessEngineClient` runs the core in the caller's process (the offline `LLM`); the server
runs the core in its own process behind the same interface.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable

from tenon.engine.core import EngineCore, EngineStats
from tenon.engine.request import Request
from tenon.engine.scheduler_output import EngineCoreOutput


class EngineCoreClient(abc.ABC):
    @abc.abstractmethod
    def add_request(self, request: Request) -> None:
        """Queue a request; raises ValueError if the engine can never serve it."""

    @abc.abstractmethod
    def abort_requests(self, request_ids: Iterable[str]) -> None:
        """Stop requests and free their blocks; unknown ids are ignored."""

    @abc.abstractmethod
    def get_outputs(self) -> list[EngineCoreOutput]:
        """The outputs of the next step (empty when idle)."""

    @abc.abstractmethod
    def has_unfinished_requests(self) -> bool: ...

    @abc.abstractmethod
    def stats(self) -> EngineStats: ...

    @abc.abstractmethod
    def shutdown(self) -> None: ...


class InProcessEngineClient(EngineCoreClient):
    def __init__(self, core: EngineCore) -> None:
        self.core = core

    def add_request(self, request: Request) -> None:
        self.core.add_request(request)

    def abort_requests(self, request_ids: Iterable[str]) -> None:
        self.core.abort_requests(request_ids)

    def get_outputs(self) -> list[EngineCoreOutput]:
        return self.core.step() if self.core.has_work() else []

    def has_unfinished_requests(self) -> bool:
        return self.core.scheduler.has_unfinished_requests()

    def stats(self) -> EngineStats:
        return self.core.stats()

    def shutdown(self) -> None:
        self.core.shutdown()
