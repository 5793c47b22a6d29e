"""One intra-op thread while these tests run: their tensors are tiny, and on the 2 shared cores
a second spinning OpenMP thread made them several times slower under load."""

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
