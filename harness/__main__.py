"""``python -m harness``: see harness/cli.py."""

import sys

if sys.argv[1:2] == ["fuzz"] and not {"--no-isolation", "--scheduler", "-h", "--help"} & set(sys.argv):
    # The server the workers fork from imports torch while this process does
    # (harness.worker_process.start_server, which takes it over).
    from harness import forkserver

    forkserver.start_early("harness.worker_process:serve", ("torch",))

from harness.cli import main  # noqa: E402

sys.exit(main())
