"""The Triton attention tests' interpreter fix (see the fixture), for every module here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.plugins.attention.triton_paged.triton_cases import INTERPRETING


@pytest.fixture(autouse=True, scope="module")
def interpreter_loops_over_tensor_bounds() -> Iterator[None]:
    """Backports a fix of Triton's interpreter (in 3.9, not in 3.6): it turned a scalar, a
    one-element array, into an int with `int(array)`, which NumPy 2.4 refuses, so a loop whose
    bounds come from the data failed. Compiled kernels never run this; it lets the CPU cases
    pass on the GPU machine's Triton 3.6 too (`-m "not gpu"` there)."""
    if not INTERPRETING:
        yield
        return
    from triton.runtime import interpreter

    original = interpreter._patch_lang_tensor

    def patch_lang_tensor(tensor: type, scope: Any) -> None:
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.squeeze()))

    interpreter._patch_lang_tensor = patch_lang_tensor
    yield
    interpreter._patch_lang_tensor = original

