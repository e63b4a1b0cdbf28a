"""Reading the docs as data: a page's sections, the tables in them, and the names a
table cell shows in backticks. Just enough markdown for tests/test_docs.py."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class Table:
    page: str  # relative to the repository root, as a failure message names it
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def column(self, name: str) -> int:
        return self.header.index(name)


def page(relative: str) -> str:
    return (ROOT / relative).read_text()


def section(relative: str, heading: str) -> str:
    """The text under the heading whose title is ``heading``, up to the next heading
    of the same or a higher level."""
    lines = page(relative).splitlines()
    for start, line in enumerate(lines):
        match = re.match(r"(#+) (.*)", line)
        if match and match.group(2).strip() == heading:
            level = len(match.group(1))
            end = next(
                (i for i in range(start + 1, len(lines)) if re.match(rf"#{{1,{level}}} ", lines[i])),
                len(lines),
            )
            return "\n".join(lines[start + 1 : end])
    raise AssertionError(f"{relative} has no heading {heading!r}")


def cells(line: str) -> tuple[str, ...]:
    """One table row's cells, stripped; an escaped ``\\|`` stays inside its cell."""
    parts = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return tuple(part.strip().replace("\\|", "|") for part in parts)


def tables(relative: str, heading: str | None = None) -> list[Table]:
    """Every table on a page, or in one of its sections."""
    text = page(relative) if heading is None else section(relative, heading)
    found, block = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            block.append(line)
            continue
        if len(block) >= 2 and set(block[1].replace("|", "").strip()) <= set("-: "):
            found.append(Table(relative, cells(block[0]), tuple(cells(row) for row in block[2:])))
        block = []
    return found


def table(relative: str, heading: str, first_column: str) -> Table:
    """The one table in a section whose first column is headed ``first_column``."""
    matching = [found for found in tables(relative, heading) if found.header[0] == first_column]
    assert len(matching) == 1, f"{relative}, section {heading!r}: expected one table headed {first_column!r}, found {len(matching)}"
    return matching[0]


def code_names(cell: str) -> list[str]:
    """The backticked names in a cell: ``--timeout SECONDS`` gives ``--timeout``,
    `` `input_scale`, `h0_scale` `` gives both."""
    return [span.split()[0] for span in re.findall(r"`([^`]+)`", cell) if span.split()]
