"""`tenon COMMAND ...`: the console script's entry point.

Each subcommand is a module with `register(subparsers)` (adds its parser and sets
`run=<its run function>` as a default) and `run(args) -> int`. Adding a command is one line in
`COMMAND_MODULES`; modules are imported by name so each keeps its heavy imports to itself.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

COMMAND_MODULES: tuple[str, ...] = (
    "tenon.cli.generate",
    "tenon.cli.chat",
    "tenon.cli.bench",
    "tenon.cli.doctor",
    "tenon.cli.serve",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tenon", description="Tenon: an LLM inference engine built as a plugin framework."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
