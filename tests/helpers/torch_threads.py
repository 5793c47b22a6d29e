"""One torch intra-op thread for test modules of tiny tensors: on the 2 shared cores a second
spinning OpenMP thread makes them several times slower (every parallel region waits for a
preempted thread). Import the fixture into a conftest or test module to use it there."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
