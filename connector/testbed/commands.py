"""The test bed's subcommands of `genesys-connector`: `simulate` and `demo`.

The worker's CLI imports this module only (the one edge from the worker into the test bed that the import
contract allows), and only to register these two commands.
"""

from __future__ import annotations

from typing import Any

from connector.testbed import demo
from connector.testbed.simulator import cli as simulator_cli


def register(subparsers: Any) -> None:
    """Add `simulate` and `demo` to the `genesys-connector` command line."""
    simulator_cli.register(subparsers)
    demo.register(subparsers)
