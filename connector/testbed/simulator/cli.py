"""`genesys-connector simulate` and `python -m connector.testbed.simulator`: the Genesys Cloud API simulator.

Options map one to one onto `SimulatorConfig` fields; `--config FILE` (YAML or JSON of those fields) is read
first and explicit options override it. Exit codes: 0 after a clean stop, 2 for bad options.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from connector.testbed.simulator.config import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SimulatorConfig
from connector.testbed.simulator.faults import KINDS
from connector.testbed.simulator.server import run_foreground

DEFAULT_PORT = 8089
DEFAULT_LIVE_RATE = 10.0
_DESCRIPTION = f"""\
Run a local Genesys Cloud analytics API simulator (conversation details query, async jobs, OAuth client
credentials login) with seeded, realistic data, live traffic, rate limits and fault injection.
API and login share one base URL; admin routes are under /_sim/. Prints SIMULATOR_URL=<url> when ready.
Default credentials: client id '{DEFAULT_CLIENT_ID}', secret '{DEFAULT_CLIENT_SECRET}'."""

# (flag, config field, type, help)
_OPTIONS: tuple[tuple[str, str, Any, str], ...] = (
    ("--seed", "seed", int, "random seed: same seed, same history (default 1)"),
    ("--history-days", "history_days", float, "days of history before now (default 2)"),
    (
        "--history-start",
        "history_start",
        str,
        "explicit history start, ISO-8601 with zone (overrides --history-days)",
    ),
    ("--history-end", "history_end", str, "explicit history end (default: now)"),
    ("--volume", "volume_per_hour", float, "history conversations per hour, daily average (default 120)"),
    (
        "--live-rate",
        "live_rate_per_minute",
        float,
        f"new live conversations per minute (default {DEFAULT_LIVE_RATE:g})",
    ),
    (
        "--live-duration",
        "live_duration_s",
        float,
        "live conversations last this many seconds (default: realistic)",
    ),
    (
        "--ingest-delay",
        "ingest_delay_s",
        float,
        "a live conversation's start lags its indexing by up to this (s, default 2)",
    ),
    ("--acw-delay", "acw_delay_s", float, "wrap-up appears this long after the end (s, default 30)"),
    (
        "--evaluation-delay",
        "evaluation_delay_s",
        float,
        "evaluations arrive this long after the end (s, default 3600)",
    ),
    ("--survey-delay", "survey_delay_s", float, "surveys arrive this long after the end (s, default 1800)"),
    (
        "--reprocess-delay",
        "reprocess_delay_s",
        float,
        "reprocessing corrections after the end (s, default 172800)",
    ),
    ("--rate-limit", "rate_limit", int, "requests per token per window (default 300)"),
    ("--rate-window", "rate_window_s", float, "rate-limit window in seconds (default 60)"),
    ("--latency-ms", "latency_ms", float, "artificial latency of every /api/v2 response (default 0)"),
    ("--latency-jitter-ms", "latency_jitter_ms", float, "uniform +/- jitter on that latency (default 0)"),
    ("--client-id", "client_id", str, f"OAuth client id (default {DEFAULT_CLIENT_ID})"),
    ("--client-secret", "client_secret", str, f"OAuth client secret (default {DEFAULT_CLIENT_SECRET})"),
    ("--token-ttl", "token_ttl_s", int, "access token lifetime, expires_in (s, default 86399)"),
    ("--max-page-size", "max_page_size", int, "largest accepted query pageSize (default 100)"),
    ("--pagination-cap", "pagination_cap", int, "pageNumber*pageSize cap (default 100000)"),
    (
        "--total-hits-jitter",
        "total_hits_jitter",
        float,
        "totalHits is approximate by +/- this fraction (default 0.02)",
    ),
    (
        "--fixed-total-hits",
        "fixed_total_hits",
        int,
        "every query page reports this totalHits instead of the real count (a wrong estimate)",
    ),
    (
        "--duplicate-probability",
        "duplicate_probability",
        float,
        "share of hits duplicated server-side (default 0.01)",
    ),
    ("--data-lake-lag", "data_lake_lag_s", float, "jobs see data up to now minus this (s, default 3600)"),
    ("--job-queued", "job_queued_s", float, "seconds a job stays QUEUED (default 1)"),
    ("--job-pending", "job_pending_s", float, "seconds a job stays PENDING (default 2)"),
    ("--job-ttl", "job_ttl_s", float, "seconds job results live after completion (default 86400)"),
    (
        "--data-lake-step",
        "data_lake_step_s",
        float,
        "dataAvailabilityDate advances in steps of this many seconds (default 3600)",
    ),
    (
        "--max-concurrent-jobs",
        "max_concurrent_jobs",
        int,
        "QUEUED+PENDING jobs allowed, 0 = no cap (default 5)",
    ),
    (
        "--job-max-interval-days",
        "job_max_interval_days",
        float,
        "longest job interval, 0 = no cap (default 31)",
    ),
    (
        "--job-failure-probability",
        "job_failure_probability",
        float,
        "share of jobs that end FAILED (default 0)",
    ),
    (
        "--start-granularity",
        "start_granularity_s",
        float,
        "round generated conversation starts down to N seconds, making ties common (default 0: ms)",
    ),
    (
        "--late-index-probability",
        "late_index_probability",
        float,
        "share of conversations the query index gets late (default 0)",
    ),
    (
        "--late-index-delay",
        "late_index_delay_s",
        float,
        "late-indexed conversations reach the query index this long after their start (s, default 86400)",
    ),
    ("--log-level", "log_level", str, "debug, info, warning or error (default warning)"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every simulator option to `parser` (defaults None so a --config file can supply values)."""
    parser.add_argument("--config", type=Path, help="YAML or JSON file of SimulatorConfig fields")
    parser.add_argument("--host", default=None, help="interface to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=None, help=f"port, 0 = any free port (default {DEFAULT_PORT})"
    )
    for flag, dest, kind, help_text in _OPTIONS:
        parser.add_argument(flag, dest=dest, type=kind, default=None, help=help_text)
    parser.add_argument(
        "--no-diurnal", dest="diurnal", action="store_false", default=None, help="flat history volume"
    )
    parser.add_argument(
        "--seven-day-cap",
        dest="seven_day_cap_without_filters",
        action="store_true",
        default=None,
        help="reject query intervals over 7 days when no filters are given (off by default)",
    )
    parser.add_argument(
        "--unstable-tie-order",
        dest="unstable_tie_order",
        action="store_true",
        default=None,
        help="query results with equal sort values come back in a random order on every request",
    )
    parser.add_argument(
        "--fault",
        dest="fault",
        action="append",
        default=None,
        metavar="KIND=P",
        help=f"fault probability on every /api/v2 route, repeatable, e.g. 503=0.05 ({', '.join(KINDS)})",
    )


def register(subparsers: Any) -> None:
    """Register the `simulate` subcommand on the top-level CLI."""
    parser = subparsers.add_parser(
        "simulate",
        help="run the Genesys Cloud API simulator",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """Merge the --config file, CLI defaults and explicit options into a validated SimulatorConfig."""
    values: dict[str, Any] = {"port": DEFAULT_PORT, "live_rate_per_minute": DEFAULT_LIVE_RATE}
    if args.config is not None:
        loaded = yaml.safe_load(args.config.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{args.config}: expected a mapping of SimulatorConfig fields")
        values.update(loaded)
    explicit = {dest: getattr(args, dest) for _, dest, _, _ in _OPTIONS}
    explicit.update(host=args.host, port=args.port, diurnal=args.diurnal)
    explicit["seven_day_cap_without_filters"] = args.seven_day_cap_without_filters
    explicit["unstable_tie_order"] = args.unstable_tie_order
    values.update({k: v for k, v in explicit.items() if v is not None})
    client_id = values.pop("client_id", None)
    client_secret = values.pop("client_secret", None)
    if client_id is not None or client_secret is not None:
        values["clients"] = [
            {
                "client_id": client_id or DEFAULT_CLIENT_ID,
                "client_secret": client_secret or DEFAULT_CLIENT_SECRET,
            }
        ]
    if args.fault:
        values["faults"] = dict(_parse_fault_option(item) for item in args.fault)
    return SimulatorConfig(**values)


def _parse_fault_option(item: str) -> tuple[str, float]:
    kind, sep, prob = item.partition("=")
    try:
        if not sep:
            raise ValueError
        return kind, float(prob)
    except ValueError:
        raise ValueError(f"--fault '{item}' must look like KIND=PROBABILITY, e.g. 503=0.05") from None


def run(args: argparse.Namespace) -> int:
    """Handler of `simulate`: build the config, serve until stopped."""
    try:
        config = config_from_args(args)
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "config"
            print(f"simulate: {where}: {err['msg']}", file=sys.stderr)
        return 2
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    return run_foreground(config)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m connector.testbed.simulator`: the same options as `genesys-connector simulate`."""
    parser = argparse.ArgumentParser(
        prog="python -m connector.testbed.simulator",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
