"""The missy command line from a checkout or a vendored copy: ``python -m missy ...`` or
``python3 missy.py ...`` (the CLI itself is missy_providers/cli.py). An installed wheel has
the ``missy-providers`` script and ``python -m missy_providers`` instead: it installs no
top-level ``missy`` module or command, which are the Missy assistant's own."""

from __future__ import annotations

import os
import sys


def main() -> int:
    if sys.version_info < (3, 10):  # noqa: UP036 (a vendored copy may run on any Python)
        sys.stderr.write(f"missy: needs Python 3.10+, this is {sys.version.split()[0]}\n")
        sys.exit(2)
    if __spec__ is None:
        # Run as a file (`python -I path/to/missy.py`, a vendored copy): isolated mode leaves
        # the script's directory off sys.path, so look for missy_providers beside this file.
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from missy_providers.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
