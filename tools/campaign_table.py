"""Markdown table of long campaigns from their JSON reports.

    python tools/campaign_table.py runs/*.json > table.md

One row per implementation and seed, in name order: examples run, verdict, wall
seconds, cases set aside as declared known failures, and cases that were slow (over
the per-example timeout, finished when run again). A seed run twice (a rerun after a
fix) keeps the report given last.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows(paths: list[Path]) -> dict[tuple[str, int], dict]:
    found: dict[tuple[str, int], dict] = {}
    for path in paths:
        document = json.loads(path.read_text())
        for name, entry in document["implementations"].items():
            found[(name, entry["seed"])] = entry
    return found


def table(found: dict[tuple[str, int], dict]) -> str:
    lines = [
        "| implementation | family | seed | examples | verdict | seconds | set aside (known failures) | slow cases |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (name, seed), entry in sorted(found.items()):
        aside = sum(entry.get("known_failure_cases", {}).values())
        finding = ""
        if entry["verdict"] != "pass" and entry.get("failure"):
            finding = f": {entry['failure']['kind']} ({entry['failure']['subject']})"
        lines.append(
            f"| {name} | {entry.get('family') or '?'} | {seed} | {entry['examples']:,} | {entry['verdict']}{finding} "
            f"| {entry['seconds']:,.0f} | {aside or ''} | {len(entry.get('slow_cases', [])) or ''} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path)
    print(table(rows(parser.parse_args().reports)))


if __name__ == "__main__":
    main()
