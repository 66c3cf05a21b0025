"""Command line: `genesys-connector run | status | check-config | verify | simulate | demo`.

Each subcommand parses its arguments, builds what it needs and hands off; no business logic lives here.
Exit codes (`connector.errors.ExitCode`): 0 success, 1 fatal runtime error, 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from connector import __version__
from connector.errors import CheckpointError, ConfigError, ExitCode


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser; subcommands register their own options."""
    parser = argparse.ArgumentParser(
        prog="genesys-connector",
        description="Stream Genesys Cloud conversation detail records into Kafka.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the connector (long-running worker)")
    _config_arg(run)
    run.add_argument(
        "--reset-checkpoint",
        action="store_true",
        help="start over: move the checkpoint and change store aside (kept as .bak files) and begin at "
        "windows.start",
    )
    run.set_defaults(handler=_cmd_run)

    status = sub.add_parser(
        "status", help="show progress from the checkpoint (read-only, safe while running)"
    )
    _config_arg(status)
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    status.set_defaults(handler=_cmd_status)

    check = sub.add_parser("check-config", help="validate the configuration and print it with secrets masked")
    _config_arg(check)
    check.set_defaults(handler=_cmd_check_config)

    verify = sub.add_parser(
        "verify",
        help="compare what Genesys has for a range with what reached Kafka (exit 0 nothing missing, "
        "1 missing, 2 bad usage, 3 could not verify)",
    )
    _config_arg(verify)
    verify.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="T1",
        help="range start: ISO-8601 instant, a UTC date, or relative as --from=-2d",
    )
    verify.add_argument("--to", dest="end", required=True, metavar="T2", help="range end, exclusive")
    verify.add_argument(
        "--read-topic", action="store_true", help="read the keys in the topic instead of trusting the ledger"
    )
    verify.add_argument("--json", action="store_true", help="print JSON instead of a table")
    verify.add_argument("--hourly", action="store_true", help="one row per hour instead of per day")
    verify.set_defaults(handler=_cmd_verify)

    _register_testbed(sub)
    return parser


#: The test bed's commands, for the one-line hint when it is not installed.
_TESTBED_COMMANDS = {
    "simulate": "run the Genesys Cloud API simulator",
    "demo": "the whole pipeline on the simulator and an embedded Kafka broker",
}


def _register_testbed(sub: Any) -> None:
    """`simulate` and `demo` come from the test bed (`connector.testbed`, the `testbed` extra).

    The worker never needs it: the container image leaves it out. Without it, both commands still parse
    and answer with one line saying how to get it (exit 2), instead of vanishing from `--help`.
    """
    try:
        from connector.testbed.commands import register
    except ImportError as exc:
        for name, text in _TESTBED_COMMANDS.items():
            # no option prefix: every argument (`--help`, `--port 8089`...) is taken as is, then refused
            parser = sub.add_parser(
                name, help=f"{text} (needs the testbed extra)", add_help=False, prefix_chars="\0"
            )
            parser.add_argument("args", nargs="*")
            parser.set_defaults(handler=functools.partial(_testbed_missing, name, str(exc)))
        return
    register(sub)


def _testbed_missing(command: str, reason: str, _args: argparse.Namespace) -> int:
    print(
        f"genesys-connector {command}: the test bed is not installed ({reason}); "
        "install it with: pip install 'genesys-kafka-connector[testbed]'",
        file=sys.stderr,
    )
    return ExitCode.CONFIG


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="YAML configuration file (every field can also be set with GENESYS_CONNECTOR__SECTION__KEY "
        "environment variables)",
    )


def _print_config_error(exc: ConfigError) -> int:
    print(f"genesys-connector: {exc}", file=sys.stderr)
    return ExitCode.CONFIG


def _cmd_run(args: argparse.Namespace) -> int:
    import logging

    from connector.config import Settings, load_config
    from connector.logs import configure_logging
    from connector.secrets import Redactor
    from connector.service import RunOptions, run_connector

    redactor = Redactor()
    try:
        settings: Settings = load_config(args.config)
        configure_logging(settings.logging.level, settings.logging.format, redactor=redactor)
    except ConfigError as exc:
        return _print_config_error(exc)
    _tune_gc()
    options = RunOptions(reset_checkpoint=args.reset_checkpoint)
    try:
        return asyncio.run(run_connector(settings, options=options, redactor=redactor))
    except Exception as exc:  # e.g. from the event loop's shutdown: never an unredacted traceback
        logging.getLogger("connector").critical("connector stopped on an unexpected error", exc_info=exc)
        return ExitCode.FATAL


def _tune_gc() -> None:
    """Keep the objects alive after start-up (modules, config, clients) out of every later collection.

    The worker allocates millions of short-lived objects (parsed pages), so the cyclic collector runs
    often; scanning the start-up heap each time is wasted work. Raising the thresholds as well saved more
    CPU but let cyclic garbage pile up (peak RSS +100 MB in `make bench`), so they stay at the defaults.
    """
    gc.freeze()


def _cmd_status(args: argparse.Namespace) -> int:
    from connector.config import load_status_config
    from connector.status import render_status

    try:
        settings = load_status_config(args.config)
    except ConfigError as exc:
        return _print_config_error(exc)
    try:
        text = render_status(settings, as_json=args.json, secrets=settings.secrets)
    except CheckpointError as exc:
        print(f"genesys-connector: {exc}", file=sys.stderr)
        return ExitCode.FATAL
    print(text)
    return ExitCode.OK


def _cmd_check_config(args: argparse.Namespace) -> int:
    import orjson

    from connector.config import load_config

    try:
        settings = load_config(args.config)
    except ConfigError as exc:
        return _print_config_error(exc)
    print(orjson.dumps(settings.redacted(), option=orjson.OPT_INDENT_2, default=str).decode())
    return ExitCode.OK


def _cmd_verify(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from connector.config import load_config
    from connector.logs import configure_logging
    from connector.secrets import Redactor
    from connector.service import register_secrets
    from connector.verify import VerifyRequest, VerifyUsageError, parse_when, run_verify

    redactor = Redactor()
    try:
        settings = load_config(args.config)
        # warnings only (retries, tie groups), on stderr, secrets masked: stdout is the report
        configure_logging("WARNING", settings.logging.format, redactor=redactor)
    except ConfigError as exc:
        return _print_config_error(exc)
    register_secrets(settings, redactor)
    now = datetime.now(UTC)
    try:
        request = VerifyRequest(
            start=parse_when(args.start, now=now, name="--from"),
            end=parse_when(args.end, now=now, name="--to"),
            read_topic=args.read_topic,
            hourly=args.hourly,
            as_json=args.json,
        )
    except VerifyUsageError as exc:
        print(f"genesys-connector verify: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    return asyncio.run(run_verify(settings, request, secrets=redactor))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None) is not None and not Path(args.config).exists():
        print(f"genesys-connector: config file not found: {args.config}", file=sys.stderr)
        return ExitCode.CONFIG
    result: int = args.handler(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
