"""One torch thread for the op tests. Triton's interpreter is switched on for the CPU suite by
the root conftest (tests/conftest.py); a `-m gpu` run on a GPU compiles the kernels."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    # Tiny tensors on 2 shared cores: a second spinning OpenMP thread only slows them down.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
