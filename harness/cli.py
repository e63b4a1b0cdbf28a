"""Command line: ``python -m harness list | fuzz | bench``.

Thin argument parsing over the engine modules. Exit codes: 0 nothing wrong, 1 a
discrepancy (or a broken implementation), 2 a usage error.
"""

from __future__ import annotations

import argparse
import sys

from harness.registry import DuplicateImplementationError, Registry, UnknownImplementationError, discover
from harness.usage import EXIT_DISCREPANCY, EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE, UsageError

__all__ = ["EXIT_DISCREPANCY", "EXIT_INCOMPLETE", "EXIT_OK", "EXIT_USAGE", "UsageError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="{list,fuzz,bench}")

    commands.add_parser("list", help="show the registered implementations")

    fuzz = commands.add_parser("fuzz", help="compare implementations with torch on generated cases")
    from harness import fuzz_command

    fuzz_command.add_arguments(fuzz)
    add_family_argument(fuzz)

    bench = commands.add_parser("bench", help="time implementations against torch")
    from harness import bench as bench_module

    bench_module.add_arguments(bench)  # with its own, repeatable --family
    return parser


def add_family_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--family", action="append", metavar="FAMILY",
        help="only implementations of this family (RNN, ...; repeatable); with --impl, checks that each is of one of them",
    )


def select(args, *, always: tuple[str, ...] = ()) -> tuple[Registry, list[str]]:
    """Load what the command line names and return the registry and the names to run.

    ``--impl`` imports only those plugins (and ``always``, say the bench baseline);
    without it every installed plugin loads, and ``--family`` keeps those of one family.
    """
    names = list(dict.fromkeys(args.impl or []))
    # bench's --family is its own (each family timed against its own baseline): not a filter here.
    families = [] if args.command == "bench" else list(dict.fromkeys(getattr(args, "family", None) or []))
    if families:
        from harness.families import FAMILY_NAMES

        for family in families:
            if family not in FAMILY_NAMES:
                raise UsageError(f"unknown family {family!r}; known families: {', '.join(FAMILY_NAMES)}")
    asked = " ".join(f"--family {family}" for family in families)
    if names:
        try:
            registry = discover(names + [name for name in always if name not in names])
        except UnknownImplementationError as error:
            raise UsageError(str(error)) from None
        for name in names:
            if families and name in registry.loaded and registry.implementation(name).family not in families:
                raise UsageError(
                    f"--impl {name} is of family {registry.implementation(name).family}, not {' or '.join(families)}; "
                    f"drop {asked} or pick an implementation of that family (`python -m harness list` shows each one's family)"
                )
        return registry, names
    registry = discover()
    if not families:
        return registry, registry.names
    chosen = [name for name in registry.names if registry.implementation(name).family in families]
    if registry.broken:
        print(f"note: {asked} leaves out plugins that failed to load: {', '.join(p.name for p in registry.broken)}", file=sys.stderr)
    if not chosen:
        raise UsageError(f"no installed implementation is of family {' or '.join(families)}; `python -m harness list` shows each one's family")
    return registry, chosen


def command_list(registry: Registry) -> int:
    rows = [("name", "family", "origin", "limits", "covering set (default profile)", "description")]
    for plugin in registry.loaded.values():
        implementation = plugin.implementation
        limits = ", ".join(f"{key}={value}" for key, value in implementation.limits().items()) or "-"
        rows.append((plugin.name, implementation.family, plugin.found.origin, limits, covering_text(implementation), implementation.description))
    for plugin in registry.broken:
        rows.append((plugin.name, "?", plugin.found.origin, f"BROKEN: {plugin.error}", "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths)) + "  " + row[5])
    return EXIT_OK


def covering_text(implementation) -> str:
    """What the covering phase of a default campaign runs: its pairs and cases, or
    that the budget defers it to the long profile (every pair left uncovered)."""
    from harness.campaign import PROFILES
    from harness.case_space import space_for
    from harness.covering_stage import plan

    space = space_for(implementation, ("cpu",))
    text = f"{len(space.feasible_pairs)} pairs in {len(space.covering_rows)} cases + {len(space.invalid_rows)} invalid"
    budget = implementation.example_budget(PROFILES["default"][0])
    if plan(space, budget, "default").deferred:
        text += f"; long profile only (default budget {budget}: pairs left uncovered)"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            return command_list(discover())
        if args.command == "fuzz":
            from harness import fuzz_command

            registry, names = select(args)
            return fuzz_command.run_command(args, registry, names)
        if args.command == "bench":
            from harness import bench

            baselines = tuple(bench.builtin_name(bench.BASELINE, family) for family in bench.BENCH_FAMILIES)
            registry, names = select(args, always=baselines)
            return bench.run_command(args, registry, names)
    except (UsageError, DuplicateImplementationError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    parser.error(f"unknown command {args.command!r}")
    return EXIT_USAGE
