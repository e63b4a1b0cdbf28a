"""Exit codes and the usage error shared by the command-line front ends.

`harness.cli` parses arguments and dispatches to `harness.fuzz_command` and
`harness.bench`; those (and what they run) report a request that cannot be done with `UsageError`.
Keeping both here lets the engine modules raise it without importing the CLI.
"""

from __future__ import annotations

EXIT_OK, EXIT_DISCREPANCY, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Something the user asked for cannot be done; exit 2 with this message."""
