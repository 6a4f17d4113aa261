"""The missy command line: ``python -m missy providers`` (or the ``missy`` console script).

Output formatting only; everything it shows comes from missy_providers. It never prints a
secret: the listing shows where a key comes from, not the key.

Exit codes: 0 ok, 1 provider/runtime error, 2 usage or config error, 3 policy denial,
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_POLICY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="missy", description="Missy's provider layer: see what is configured and usable.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE",
                        help="config file (default: $MISSY_CONFIG, then ~/.missy/config.yaml)")
    common.add_argument("-v", "--verbose", action="store_true",
                        help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    providers = sub.add_parser("providers", parents=[common],
                               help="list the configured providers and whether they are usable")
    providers.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _models(row: dict[str, Any]) -> str:
    tiers = [m for m in (row["fast_model"], row["premium_model"]) if m]
    if not tiers:
        return str(row["model"])
    return f"{row['model']} (fast: {row['fast_model'] or '-'}, premium: " \
           f"{row['premium_model'] or '-'})"


def _table(rows: list[dict[str, Any]]) -> str:
    header = ["NAME", "TYPE", "MODEL", "ENDPOINT", "KEY", "ENABLED", "AVAILABLE"]
    cells = [header] + [[
        row["name"] + (" (default)" if row["default"] else ""), row["type"], _models(row),
        row["endpoint"], row["key_source"], "yes" if row["enabled"] else "no",
        "yes" if row["available"] else "no",
    ] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines) if rows else "no providers configured"


def cmd_providers(args: argparse.Namespace, out: TextIO) -> int:
    from missy_providers.config import load_config
    from missy_providers.registry import ProviderRegistry

    with ProviderRegistry(load_config(args.config)) as registry:
        rows = registry.list_providers()
    if args.json:
        out.write(json.dumps({"providers": rows}, indent=2) + "\n")
    else:
        out.write(_table(rows) + "\n")
    return EXIT_OK


COMMANDS = {"providers": cmd_providers}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from missy_providers.errors import (
        ConfigError,
        MissyError,
        PolicyViolation,
        UsageError,
    )

    try:
        return COMMANDS[args.command](args, sys.stdout)
    except KeyboardInterrupt:
        sys.stderr.write("missy: interrupted\n")
        return EXIT_INTERRUPTED
    except MissyError as exc:
        if args.verbose:
            import traceback

            traceback.print_exc()
        kind = type(exc).__name__
        sys.stderr.write(f"missy: {kind}: {exc}\n")
        if isinstance(exc, (ConfigError, UsageError)):
            return EXIT_USAGE
        return EXIT_POLICY if isinstance(exc, PolicyViolation) else EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
