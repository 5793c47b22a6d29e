"""One torch thread for the op tests. Triton's interpreter is switched on for the CPU suite by
the root conftest (tests/conftest.py); a `-m gpu` run on a GPU compiles the kernels."""

from __future__ import annotations

from tests.helpers.torch_threads import one_torch_thread  # noqa: F401 (fixture)
