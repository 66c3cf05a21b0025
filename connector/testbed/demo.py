"""`genesys-connector demo` (`make demo`): the whole pipeline on this machine, in one command.

It starts the project's Genesys simulator (a day or two of history plus live traffic, with the wrap-ups,
evaluations and surveys that change conversations after they end, and a few injected 5xx/timeouts), an
embedded Apache Kafka broker (KRaft, from the jars `make` fetched), and the connector itself; prints a
live progress line; stops the connector after `--duration` seconds the way SIGTERM would; then reads the
topic back and prints a reconciliation against the simulator's ground truth, then runs
`genesys-connector verify --read-topic` over the same range (Genesys' own answer - the data lake's jobs
where it has the range, the query for the tail - against the topic's keys, with the completeness ledger's
columns) and prints its table. It says CLEAN only when both agree that nothing is missing. Everything it
started is stopped before it returns, and its state lives in a temporary directory unless `--state-dir`
is given.

The history starts further back than the simulator's data lake lags (two hours), so the connector reads
what the data lake holds through async jobs (the `jobs` count of the progress line) and hands over to the
details query at `dataAvailabilityDate` for the fresh tail (the `windows` count). The reconciliation
compares the conversations of the job-read (settled) part with the simulator's records with participant
attributes (the jobs' view), the rest with the query's view.

Time is compressed so a short run shows the settlement re-scans at work: the simulator's post-end
changes arrive within seconds, and the connector re-scans each window after 20 s and 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from connector.app import Connector
from connector.config import Settings, load_config
from connector.metrics import ConnectorMetrics
from connector.service import run_connector
from connector.testbed.reconcile import Reconciliation, read_topic, reconcile
from connector.verify import VerifyRequest, run_verify

log = logging.getLogger(__name__)

TOPIC = "genesys.conversations"
DATA_LAKE_LAG_S = 2 * 3600.0  # the simulated data lake lags two hours behind ...
DATA_LAKE_STEP_S = 3600.0  # ... and advances in hourly steps


def register(sub: Any) -> None:
    """Add the `demo` subcommand."""
    p = sub.add_parser(
        "demo", help="run the whole pipeline on the built-in simulator and a local Kafka broker"
    )
    p.add_argument("--duration", type=float, default=90.0, help="seconds to run the connector (default 90)")
    p.add_argument(
        "--history-hours", type=float, default=36.0, help="hours of history to backfill (default 36)"
    )
    p.add_argument("--volume", type=float, default=150.0, help="history conversations per hour (default 150)")
    p.add_argument("--live-rate", type=float, default=20.0, help="new conversations per minute (default 20)")
    p.add_argument(
        "--fault-rate", type=float, default=0.03, help="share of API calls that fail (default 0.03)"
    )
    p.add_argument("--rate-limit", type=int, default=300, help="simulated requests per minute (default 300)")
    p.add_argument("--state-dir", type=Path, help="keep the checkpoint here (default: a temporary directory)")
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Run the demo; exit 0 when the reconciliation is clean."""
    from connector.logs import configure_logging

    # Errors only: the injected faults make the connector log every retry at WARNING, which would break
    # the progress line; the line itself counts the retries instead.
    configure_logging("ERROR", "text")
    out = sys.stdout
    with contextlib.ExitStack() as stack:
        state_dir = args.state_dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="genesys-demo-"))
        )
        _say(out, "starting an embedded Apache Kafka broker (KRaft) ...")
        kafka = stack.enter_context(_kafka())
        kafka.create_topic(TOPIC, partitions=3, exist_ok=True)
        _say(out, f"  broker at {kafka.bootstrap_servers}, topic {TOPIC}")
        _say(out, "starting the Genesys Cloud simulator ...")
        sim = stack.enter_context(_simulator(args))
        _say(out, f"  simulator at {sim.base_url} with {sim.control.conversation_count()} conversations")
        history_start = datetime.now(UTC) - timedelta(hours=args.history_hours)
        settings = _settings(sim.base_url, kafka.bootstrap_servers, state_dir, history_start)
        metrics = ConnectorMetrics(rescans=len(settings.windows.rescan_delays))
        handover = sim.control.set_data_lake()  # where the jobs backfill hands over to the query
        _say(out, f"  data lake complete up to {handover:%Y-%m-%d %H:%M}Z: jobs before it, the query after")
        _say(out, f"running the connector for {args.duration:g} s (Ctrl-C stops it early) ...")
        asyncio.run(_run(settings, metrics, args.duration, out))
        watermark = _watermark(metrics)
        _say(out, "\nreading the topic back and reconciling with the simulator ...")
        start = settings.windows.resolve_start(datetime.now(UTC))
        truth = _truth(sim.control, start, watermark, handover)
        result = reconcile(truth, read_topic(kafka.bootstrap_servers, TOPIC))
        _print_report(out, result, settings, watermark, metrics)
        _say(out, "\ngenesys-connector verify --read-topic over the same range ...")
        verified = _verify(settings, start, watermark, out)
        return _verdict(out, result, verified)


def _truth(control: Any, start: datetime, end: datetime, handover: datetime) -> dict[str, dict[str, Any]]:
    """What the latest message of each conversation of `[start, end)` must equal.

    Before `handover` (the data lake's `dataAvailabilityDate` when the connector started), the jobs'
    view: those conversations were read by backfill jobs, whose records carry participant attributes (no
    later change reaches them during a demo: their post-end changes happened hours ago). From `handover`
    on, the details query's view: the query read those windows, and their settling jobs are due only once
    the data lake has passed them by `jobs.settle_delay`, long after the demo.
    """
    handover = min(max(handover, start), end)
    truth = control.ground_truth(start, handover, attributes=True) if handover > start else {}
    if end > handover:
        truth.update(control.ground_truth(handover, end))
    return dict(truth)


def _verify(settings: Settings, start: datetime, end: datetime, out: TextIO) -> int:
    """`verify --read-topic` over `[start, end)`, with the whole budget (the connector has stopped)."""
    genesys = settings.genesys.model_copy(update={"verify_budget_share": 1.0})
    request = VerifyRequest(start, end, read_topic=True)
    return asyncio.run(run_verify(settings.model_copy(update={"genesys": genesys}), request, out=out))


def _verdict(out: TextIO, result: Reconciliation, verified: int) -> int:
    """CLEAN only when the reconciliation and `verify` agree that nothing is missing."""
    if result.clean and verified == 0:
        _say(out, "CLEAN: the reconciliation and genesys-connector verify agree: nothing is missing.")
        return 0
    _say(
        out,
        f"NOT CLEAN: reconciliation {'clean' if result.clean else 'failed'}, "
        f"verify exit code {verified} (0 = nothing missing)",
    )
    return 1


@contextlib.contextmanager
def _kafka() -> Iterator[Any]:
    from connector.testbed.broker.launcher import EmbeddedKafka

    with EmbeddedKafka(num_partitions=3) as kafka:
        yield kafka


@contextlib.contextmanager
def _simulator(args: argparse.Namespace) -> Iterator[Any]:
    from connector.testbed.simulator import SimulatorConfig, start_simulator

    config = SimulatorConfig(
        seed=args.seed,
        history_days=(args.history_hours + 2) / 24,
        volume_per_hour=args.volume,
        live_rate_per_minute=args.live_rate,
        live_duration_s=20.0,
        acw_delay_s=5.0,
        survey_delay_s=15.0,
        evaluation_delay_s=25.0,
        rate_limit=args.rate_limit,
        # The data lake holds all but the last two hours: the jobs read most of the history (pages of
        # 1,000, with participant attributes) and hand over to the details query at dataAvailabilityDate.
        data_lake_lag_s=DATA_LAKE_LAG_S,
        data_lake_step_s=DATA_LAKE_STEP_S,
        latency_ms=150.0,
        latency_jitter_ms=100.0,
        faults={"503": args.fault_rate / 3, "504": args.fault_rate / 3, "reset": args.fault_rate / 3}
        if args.fault_rate > 0
        else {},
    )
    with start_simulator(config) as sim:
        yield sim


def _settings(api_url: str, bootstrap: str, state_dir: Path, start: datetime) -> Settings:
    env = {
        "GENESYS_CONNECTOR__GENESYS__API_BASE_URL": api_url,
        "GENESYS_CONNECTOR__GENESYS__LOGIN_BASE_URL": api_url,
        "GENESYS_CONNECTOR__GENESYS__CLIENT_ID": "demo-client",
        "GENESYS_CONNECTOR__GENESYS__CLIENT_SECRET": "demo-secret",
        "GENESYS_CONNECTOR__GENESYS__BACKOFF_BASE_S": "0.2",
        "GENESYS_CONNECTOR__WINDOWS__START": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "GENESYS_CONNECTOR__WINDOWS__LENGTH": "15s",
        "GENESYS_CONNECTOR__WINDOWS__LAG": "10s",
        "GENESYS_CONNECTOR__WINDOWS__POLL_INTERVAL": "5s",
        "GENESYS_CONNECTOR__WINDOWS__RESCAN_DELAYS": '["20s", "60s"]',
        "GENESYS_CONNECTOR__KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "GENESYS_CONNECTOR__KAFKA__TOPIC": TOPIC,
        "GENESYS_CONNECTOR__CHECKPOINT__DIRECTORY": str(state_dir),
        "GENESYS_CONNECTOR__METRICS__HOST": "127.0.0.1",
        "GENESYS_CONNECTOR__METRICS__PORT": "0",
    }
    return load_config(None, environ=env)


async def _run(settings: Settings, metrics: ConnectorMetrics, duration: float, out: TextIO) -> None:
    started: list[Connector] = []
    task = asyncio.create_task(run_connector(settings, metrics=metrics, on_started=started.append))
    began = time.monotonic()
    tty = out.isatty()
    ticks = 0
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=1.0)
            ticks += 1
            line = _progress_line(metrics, time.monotonic() - began)
            if tty:  # one line updated in place on a terminal, a line every 5 s in a log
                out.write("\r" + line.ljust(PROGRESS_WIDTH))
            elif ticks % 5 == 0:
                out.write(line + "\n")
            out.flush()
            if time.monotonic() - began >= duration and started:
                started[0].request_stop()
    except (KeyboardInterrupt, asyncio.CancelledError):
        if started:
            started[0].request_stop()
    code = await task
    out.write("\n")
    if code != 0:
        raise SystemExit(f"the connector exited with code {code}")


def _value(metrics: ConnectorMetrics, name: str, labels: dict[str, str] | None = None) -> float:
    total = 0.0
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                total += sample.value
    return total


#: The progress line is rewritten in place with `\r`: wider than an 80-column terminal, it would wrap and
#: scroll a broken line at every update. One column is kept for the cursor.
PROGRESS_WIDTH = 79


def _progress_line(metrics: ConnectorMetrics, elapsed: float) -> str:
    """One line of at most `PROGRESS_WIDTH` characters: conversations read by jobs, query windows (first
    passes + re-scans), messages sent, lag, API use. `jobs` grows during the backfill of what the data lake
    holds, then `windows` takes over for the fresh tail."""
    p = "genesys_connector_"
    by_jobs = _value(metrics, p + "conversations_delivered_total", {"path": "job"})
    windows = _value(metrics, p + "windows_completed_total", {"pass": "0"})
    rescans = _value(metrics, p + "windows_completed_total") - windows
    published = _value(metrics, p + "conversations_published_total")
    lag = _value(metrics, p + "lag_seconds")
    used = _value(metrics, p + "api_budget_utilization_ratio")
    requests = _value(metrics, p + "api_requests_total")
    retries = _value(metrics, p + "api_retries_total")
    line = (
        f"[{elapsed:3.0f}s] jobs {by_jobs:.0f} windows {windows:.0f}+{rescans:.0f} sent {published:.0f} "
        f"lag {_human(lag)} API {requests:.0f} ({retries:.0f} retried) {used * 100:.0f}%"
    )
    return line[:PROGRESS_WIDTH]


def _human(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    if seconds >= 60:
        return f"{seconds / 60:.1f}m"
    return f"{seconds:.0f}s"


def _watermark(metrics: ConnectorMetrics) -> datetime:
    value = _value(metrics, "genesys_connector_watermark_timestamp_seconds")
    if value <= 0:
        raise SystemExit("the connector completed no window; nothing to reconcile")
    return datetime.fromtimestamp(value, UTC)


def _print_report(
    out: TextIO, result: Reconciliation, settings: Settings, watermark: datetime, metrics: ConnectorMetrics
) -> None:
    start = settings.windows.resolve_start(datetime.now(UTC))
    _say(
        out,
        f"range: conversations that started in [{start:%Y-%m-%d %H:%M:%S}Z, {watermark:%Y-%m-%d %H:%M:%S}Z)",
    )
    for key, value in result.summary().items():
        _say(out, f"  {key.replace('_', ' '):<42}{value}")
    requests = _value(metrics, "genesys_connector_api_requests_total")
    if result.keys:
        _say(out, f"  {'API requests per 1,000 conversations':<42}{requests * 1000 / result.keys:.1f}")
    if result.clean:
        _say(out, "RECONCILIATION CLEAN: every conversation is in Kafka, no snapshot was published twice.")
    else:
        _say(
            out,
            f"RECONCILIATION FAILED: {len(result.missing)} missing, {result.identical_duplicates} duplicates",
        )
        for cid in result.missing[:10]:
            _say(out, f"  missing: {cid}")


def _say(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()
