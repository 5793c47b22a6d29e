"""CUDA graphs behind the platform's graph interface (`Platform.create_graph`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch


class CudaGraph:
    """One capturable, replayable graph; graphs captured with one `pool()` share memory."""

    def __init__(self) -> None:
        self._graph = torch.cuda.CUDAGraph()

    @contextlib.contextmanager
    def capture(self, pool: Any | None = None) -> Iterator[None]:
        # torch.cuda.graph captures on a side stream and syncs around it, as capture requires.
        with torch.cuda.graph(self._graph, pool=pool):
            yield

    def replay(self) -> None:
        self._graph.replay()

    def pool(self) -> Any:
        return self._graph.pool()
