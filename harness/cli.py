"""Command line: ``python -m harness list | fuzz | bench``.

Thin argument parsing over the engine modules. Exit codes: 0 nothing wrong, 1 a
discrepancy (or a broken implementation), 2 a usage error.
"""

from __future__ import annotations

import argparse
import sys

from harness.registry import DuplicateImplementationError, Registry, discover
from harness.usage import EXIT_DISCREPANCY, EXIT_OK, EXIT_USAGE, UsageError

__all__ = ["EXIT_DISCREPANCY", "EXIT_OK", "EXIT_USAGE", "UsageError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="{list,fuzz,bench}")

    commands.add_parser("list", help="show the registered implementations")

    fuzz = commands.add_parser("fuzz", help="compare implementations with torch on generated cases")
    from harness import campaign

    campaign.add_arguments(fuzz)

    bench = commands.add_parser("bench", help="time implementations against torch")
    from harness import bench as bench_module

    bench_module.add_arguments(bench)
    return parser


def select(registry: Registry, names: list[str] | None) -> list[str]:
    """The implementations named on the command line (all when none), checked."""
    if not names:
        return registry.names
    broken = {plugin.name: plugin for plugin in registry.broken}
    for name in names:
        if name in registry.loaded or name in broken:
            continue
        raise UsageError(
            f"unknown implementation {name!r}; registered: {', '.join(registry.names + list(broken)) or 'none'}. "
            "Run `python -m harness list` to see them."
        )
    return list(dict.fromkeys(names))


def command_list(registry: Registry) -> int:
    rows = [("name", "family", "origin", "limits")]
    for plugin in registry.loaded.values():
        implementation = plugin.implementation
        limits = ", ".join(f"{key}={value}" for key, value in implementation.limits().items()) or "-"
        rows.append((plugin.name, implementation.family, plugin.found.origin, limits))
    for plugin in registry.broken:
        rows.append((plugin.name, "?", plugin.found.origin, f"BROKEN: {plugin.error}"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3])
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        registry = discover()
        if args.command == "list":
            return command_list(registry)
        if args.command == "fuzz":
            from harness import campaign

            return campaign.run_command(args, registry, select(registry, args.impl))
        if args.command == "bench":
            from harness import bench

            return bench.run_command(args, registry, select(registry, args.impl))
    except (UsageError, DuplicateImplementationError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    parser.error(f"unknown command {args.command!r}")
    return EXIT_USAGE
