"""One intra-op thread while these tests run: their tensors are tiny, and on the 2 shared cores
a second spinning OpenMP thread made them several times slower under load."""

from __future__ import annotations

from tests.helpers.torch_threads import one_torch_thread  # noqa: F401 (fixture)
