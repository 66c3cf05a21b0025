"""Command line: `genesys-connector run | status | simulate | demo | check-config`.

Each subcommand parses its arguments, builds what it needs and hands off; no business logic lives here.
Exit codes: 0 success, 1 fatal runtime error, 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from connector import __version__


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser; subcommands register their own options."""
    parser = argparse.ArgumentParser(
        prog="genesys-connector",
        description="Stream Genesys Cloud conversation detail records into Kafka.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from connector.simulator import cli as simulator_cli

    simulator_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = args.handler
    result: int = handler(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
