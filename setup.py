"""Package discovery for the folder-to-package mapping that pyproject.toml declares.

The repository keeps a fixed top-level layout (core/, spec/, plugins/, backends/, kvconnectors/)
that maps onto import names (tenon, tenon.spec, tenon.plugins, tenon_cuda, tenon_rocm,
tenon_kvconnectors). setuptools cannot discover subpackages under such a mapping from
pyproject.toml alone, so this file walks each folder and lists them.
"""

from setuptools import find_packages, setup

ROOTS = {
    "tenon": "core",
    "tenon.spec": "spec",
    "tenon.plugins": "plugins",
    "tenon_cuda": "backends/cuda",
    "tenon_rocm": "backends/rocm",
    "tenon_kvconnectors": "kvconnectors",
}


def _packages_and_dirs() -> tuple[list[str], dict[str, str]]:
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    for name, folder in ROOTS.items():
        packages.append(name)
        package_dir[name] = folder
        for sub in find_packages(where=folder):
            full = f"{name}.{sub}"
            packages.append(full)
            package_dir[full] = f"{folder}/{sub.replace('.', '/')}"
    return packages, package_dir


_packages, _package_dir = _packages_and_dirs()
setup(packages=_packages, package_dir=_package_dir)
