"""Install a plugin for the length of a `with` block, as pip would, without pip.

The engine finds plugins only through installed entry points (`importlib.metadata`), so a
plugin defined in a test or a notebook is invisible to `tenon.LLM` and `tenon doctor` until its
package is installed. `temporary_distribution` writes the two files pip would write for it
(`METADATA` and `entry_points.txt` in a `*.dist-info` folder) into a temporary folder, puts the
folder on `sys.path`, and takes both away afterwards:

    with temporary_distribution("my-plugin", my_plugin_module):
        llm = LLM(model_dir, attention_backend="my-backend")   # discovered like a pip install

`plugin` is a module: registered in `sys.modules` under its `__name__` for the block when it is
not importable already, so spec targets like "my_module:MyBackend" import.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import sys
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path

from tenon.spec import ENTRY_POINT_GROUP


@contextlib.contextmanager
def temporary_distribution(
    entry_point_name: str,
    plugin: types.ModuleType,
    *,
    distribution: str | None = None,
    version: str = "0.0.0",
) -> Iterator[None]:
    """Publish `plugin` under `entry_point_name` in group "tenon.plugins" for the block.

    `distribution` defaults to "tenon-test-<entry_point_name>"; it must not be "tenon" (the
    core's own entry points are treated as built-in)."""
    if not isinstance(plugin, types.ModuleType):
        raise TypeError(
            f"plugin must be a module (the entry point's target), got {type(plugin).__name__}"
        )
    distribution = distribution or f"tenon-test-{entry_point_name}"
    if re.sub(r"[-_.]+", "-", distribution).lower() == "tenon":
        raise ValueError("a temporary distribution cannot be named 'tenon'")
    existing = sys.modules.get(plugin.__name__)
    if existing is not None and existing is not plugin:
        raise ValueError(
            f"another module is already imported as {plugin.__name__!r}; give the plugin module "
            "a name of its own"
        )
    registered = existing is None
    with tempfile.TemporaryDirectory(prefix="tenon-dist-") as root:
        dist_info = Path(root) / f"{distribution.replace('-', '_')}-{version}.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n"
        )
        (dist_info / "entry_points.txt").write_text(
            f"[{ENTRY_POINT_GROUP}]\n{entry_point_name} = {plugin.__name__}\n"
        )
        if registered:
            sys.modules[plugin.__name__] = plugin
        sys.path.insert(0, root)
        importlib.invalidate_caches()
        try:
            yield
        finally:
            sys.path.remove(root)
            if registered:
                sys.modules.pop(plugin.__name__, None)
            importlib.invalidate_caches()
