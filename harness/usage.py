"""Exit codes and the usage error shared by the command-line front ends.

`harness.cli` parses arguments and dispatches to `harness.fuzz_command` and
`harness.bench`; those (and what they run) report a request that cannot be done with `UsageError`.
Keeping both here lets the engine modules raise it without importing the CLI.
"""

from __future__ import annotations

EXIT_OK, EXIT_DISCREPANCY, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3
"""``fuzz``: 0 nothing is wrong and every promised covering set ran; 1 a discrepancy
(or an implementation the harness could not run); 2 a usage error; 3 no discrepancy,
but a covering set did not finish (a time budget cut it, or the run was interrupted),
so the run proves less than it promises."""


class UsageError(Exception):
    """Something the user asked for cannot be done; exit 2 with this message."""
