"""`genesys-connector run`: build every part from the configuration, run the connector, clean up.

Order matters and is chosen so that problems surface early and clearly, before any data moves:

1. logging, and registration of every secret with the redactor (OAuth tokens are added as they arrive);
2. the checkpoint directory lock and the checkpoint itself (a corrupt file stops here, untouched), then
   proof that the directory has room and can be written (`statedir`), and the change store with its own
   write probe: a full volume stops here, before a page is fetched or a message produced;
3. the metrics/health port;
4. Kafka: the topic must exist and the broker answer (a clear error instead of a hang);
5. Genesys: one token and one cheap query (bad credentials / missing permission stop here);
6. the main loop, under SIGTERM/SIGINT handlers that ask it to stop gracefully.

Exit codes (`connector.errors.ExitCode`): 0 stopped cleanly or bounded run finished, 1 fatal error, 2
configuration error.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector import __version__
from connector.app import Connector
from connector.clock import Clock, SystemClock
from connector.completeness import Completeness, ControlReporter, JobSettlements, LedgerPruning, Settlements
from connector.config import Settings
from connector.errors import CheckpointError, ConfigError, ConnectorError, ExitCode, RetriableError
from connector.genesys.client import GenesysClient
from connector.genesys.fetcher import WindowFetcher
from connector.genesys.jobs import JobRunner, build_job_body
from connector.health import HealthServer, Heartbeat, LoopStallMonitor
from connector.job_passes import SettlementListener
from connector.jobs_schedule import JobScheduler
from connector.kafka.publisher import KafkaPublisher
from connector.librdkafka import producer_settings
from connector.logs import process_redactor
from connector.loop_settings import LoopSettings
from connector.metrics import ConnectorMetrics
from connector.passes import InFlightSnapshots, PassRunner
from connector.retry import RetryPolicy
from connector.secrets import Redactor, is_secret_name
from connector.state.changes import ChangeStore
from connector.state.checkpoint import CheckpointState, FileCheckpointStore, config_fingerprint
from connector.state.ledger import Ledger
from connector.state.progress import Progress
from connector.state.pruning import PruneTimer
from connector.state.statedir import check_state_directory
from connector.windows import WindowPlanner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """Command-line options of `run` that are not configuration."""

    reset_checkpoint: bool = False


def fingerprint(settings: Settings) -> str:
    """What decides *which* data goes *where*: a changed value is reported when resuming."""
    f = settings.windows.filters
    return config_fingerprint(
        {
            "topic": settings.kafka.topic,
            "divisions": sorted(f.division_ids),
            "media": sorted(f.media_types),
            "queues": sorted(f.queue_ids),
        }
    )


def register_secrets(settings: Settings, redactor: Redactor) -> None:
    """Every secret the configuration holds is masked wherever it might appear (logs, checkpoint)."""
    redactor.add(settings.genesys.client_secret.get_secret_value())
    for secret in (settings.kafka.sasl_password, settings.kafka.ssl_key_password):
        if secret is not None:
            redactor.add(secret.get_secret_value())
    for key, value in settings.kafka.extra.items():
        if is_secret_name(key):
            redactor.add(str(value))


#: How often the change store is pruned (in a worker thread; the delete is indexed and chunked).
PRUNE_INTERVAL_S = 600.0
#: Genesys keeps conversation details for 31 days: an open conversation is not followed past that.
FOLLOW_HORIZON = timedelta(days=31)


def loop_settings(settings: Settings) -> LoopSettings:
    """Main-loop knobs derived from the configuration."""
    g, w = settings.genesys, settings.windows
    return LoopSettings(
        max_parallel_passes=max(1, g.max_concurrency),
        live_parallel_passes=max(1, min(2, g.max_concurrency)),
        exit_when_done=w.end is not None,
        overdue_after=w.length,  # live work for one window is done within one window length
    )


#: How far the data lake may lag behind real time before a window's settling job comes, for the change
#: store's horizon (the simulator and observed orgs lag hours; a longer lag only costs identical re-sends).
DATA_LAKE_LAG_ALLOWANCE = timedelta(days=2)


def change_store_keep(settings: Settings) -> timedelta:
    """How long a published hash is kept: past the longest re-scan (or the settling job, which comes
    `jobs.settle_delay` plus the data lake's lag after a window) of the largest window, with a margin."""
    w = settings.windows
    horizon = max(w.rescan_delays, default=w.length)
    if settings.jobs.settle:
        horizon = max(horizon, settings.jobs.settle_delay + DATA_LAKE_LAG_ALLOWANCE)
    return horizon + w.max_catchup_length + w.length * 2


def _open_checkpoint(
    settings: Settings, clock: Clock, options: RunOptions, redactor: Redactor
) -> tuple[FileCheckpointStore, CheckpointState | None]:
    store = FileCheckpointStore(settings.checkpoint.directory, clock, redact=redactor.redact)
    store.lock()
    if options.reset_checkpoint:
        backup = store.reset()
        moved = _move_change_store_aside(store, clock.now())
        log.warning(
            "checkpoint reset: starting over",
            extra={"checkpoint_backup": str(backup) if backup else None, "changes_backup": moved},
        )
    state = store.load()
    if state is not None and state.config_fingerprint and state.config_fingerprint != fingerprint(settings):
        store.close()
        raise CheckpointError(
            "the checkpoint was written with another topic or other filters; resuming would mix two data "
            "sets. Use another checkpoint.directory, or start over with --reset-checkpoint",
            path=str(store.path),
        )
    return store, state


def _move_change_store_aside(store: FileCheckpointStore, now: datetime) -> str | None:
    """On an explicit reset, keep (never delete) the old change store so everything is published again."""
    path = store.directory / "changes.sqlite3"
    if not path.exists():
        return None
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"changes.sqlite3.bak-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        src = path.with_name(path.name + suffix)
        if src.exists():
            src.rename(target.with_name(target.name + suffix))
    return str(target)


async def run_connector(
    settings: Settings,
    *,
    options: RunOptions | None = None,
    clock: Clock | None = None,
    metrics: ConnectorMetrics | None = None,
    on_started: Callable[[Connector], None] | None = None,
    redactor: Redactor | None = None,
    settlement: SettlementListener | None = None,
) -> int:
    """Run one connector until it stops; returns the process exit code. Never raises an Exception.

    `settlement` is told each span a settling job read to its end (`connector.job_passes.SettlementListener`).

    `redactor` (default: the one logging uses) learns every secret: the configured ones now, each OAuth
    token as it arrives. An exception that is not one of ours is logged with its traceback through the
    redacting log handler and ends the run with exit code 1: Python's own traceback printer would show the
    secrets its frames' messages may hold.
    """
    options = options or RunOptions()
    clock = clock or SystemClock()
    metrics = metrics or ConnectorMetrics(rescans=len(settings.windows.rescan_delays))
    redactor = redactor if redactor is not None else process_redactor()
    metrics.info.info({"version": __version__})
    register_secrets(settings, redactor)
    try:
        return await _run(settings, options, clock, metrics, on_started, redactor, settlement)
    except ConfigError as exc:
        log.error("configuration error", extra={"error": str(exc)})
        return ExitCode.CONFIG
    except ConnectorError as exc:
        log.error(
            "connector stopped on a fatal error", extra={"error": str(exc), "error_type": type(exc).__name__}
        )
        return ExitCode.FATAL
    except Exception as exc:  # the last line of defence: a redacted traceback, exit 1
        log.critical("connector stopped on an unexpected error (a bug)", exc_info=exc)
        return ExitCode.FATAL


async def _run(
    settings: Settings,
    options: RunOptions,
    clock: Clock,
    metrics: ConnectorMetrics,
    on_started: Callable[[Connector], None] | None,
    redactor: Redactor,
    settlement: SettlementListener | None = None,
) -> int:
    heartbeat = Heartbeat(clock, max_age_s=max(60.0, settings.windows.poll_interval.total_seconds() * 4))
    async with AsyncExitStack() as stack:
        store, state = _open_checkpoint(settings, clock, options, redactor)
        stack.callback(store.close)
        check_state_directory(
            settings.checkpoint.directory, min_free_bytes=settings.checkpoint.min_free_bytes
        )
        changes = ChangeStore(settings.checkpoint.directory)
        stack.callback(changes.close)
        changes.probe_write()
        ledger = Ledger(settings.checkpoint.directory, metrics=metrics)
        stack.callback(ledger.close)
        metrics.ranges_missing_conversations.set(ledger.missing_in_settled())

        health = HealthServer(
            settings.metrics.host,
            settings.metrics.port,
            registry=metrics.registry,
            heartbeat=heartbeat,
            redact=redactor.redact,
        )
        health.start()
        stack.callback(health.stop)
        stalls = LoopStallMonitor()
        stack.push_async_callback(stalls.stop)
        metrics.loop_max_stall_seconds.set_function(lambda: stalls.max_stall_s)
        metrics.loop_max_heartbeat_gap_seconds.set_function(lambda: heartbeat.max_gap_s)

        publisher = KafkaPublisher(
            producer_settings(settings.kafka),
            settings.kafka.topic,
            metrics,
            version=__version__,
            clock=clock,
            oversized=settings.kafka.oversized_records,
        )
        stack.callback(publisher.close)
        await asyncio.to_thread(publisher.verify_topic, min(30.0, settings.kafka.delivery_timeout_ms / 1000))
        control_publisher = _control_publisher(settings, metrics, clock)
        if control_publisher is not None:
            stack.callback(control_publisher.close)
            await asyncio.to_thread(
                control_publisher.verify_topic, min(30.0, settings.kafka.delivery_timeout_ms / 1000)
            )

        client = GenesysClient(settings.genesys, clock=clock, metrics=metrics, secrets=redactor)
        stack.push_async_callback(client.aclose)
        await _check_genesys(client, clock, RetryPolicy.for_requests(settings.genesys).unbounded())

        health.add_readiness_check("genesys_token", lambda: (client.tokens.has_valid_token(), "OAuth token"))
        health.add_readiness_check(
            "kafka_producer", lambda: (publisher.check_ready(2.0), f"topic {publisher.topic}")
        )
        health.add_readiness_check("checkpoint", lambda: (store.is_locked, str(store.path)))

        progress = Progress(
            state,
            rescan_delays=settings.windows.rescan_delays,
            version=__version__,
            fingerprint=fingerprint(settings),
            follow_interval=settings.windows.follow_interval,
            follow_horizon=FOLLOW_HORIZON,
            settle=settings.jobs.settle,
        )
        jobs = JobRunner(client, settings.jobs, clock=clock, metrics=metrics)
        filters = settings.windows.filters
        use_jobs = settings.jobs.backfill or settings.jobs.settle
        planner = WindowPlanner(settings.windows, clock)
        settlements = Settlements(
            ledger,
            progress,
            clock=clock,
            range_start=planner.initial_start() if state is None else None,
            range_end=settings.windows.end,
            query_settles=bool(settings.windows.rescan_delays) and not settings.jobs.settle,
            mark_reported_at_once=control_publisher is None,
        )
        if settlement is None and settings.jobs.settle:
            settlement = JobSettlements(settlements)  # hours settle when their settling job is acked
        runner = PassRunner(
            fetcher=WindowFetcher(client, settings, clock=clock, metrics=metrics),
            publisher=publisher,
            changes=changes,
            progress=progress,
            metrics=metrics,
            in_flight=InFlightSnapshots(),
            clock=clock,
            jobs=jobs,
            job_body=lambda span: build_job_body(span, filters),
            settle_delay=settings.jobs.settle_delay,
            settlement=settlement,
            completeness=Completeness(ledger, settlements, progress, clock=clock),
        )
        connector = Connector(
            clock=clock,
            metrics=metrics,
            planner=planner,
            progress=progress,
            runner=runner,
            publisher=publisher,
            checkpoints=store,
            pruning=PruneTimer(
                changes,
                keep=change_store_keep(settings),
                interval_s=PRUNE_INTERVAL_S,
                clock=clock,
                also=[LedgerPruning(ledger, horizon=FOLLOW_HORIZON, clock=clock)],
            ),
            pacer=client.pacer,
            heartbeat=heartbeat,
            settings=loop_settings(settings),
            max_catchup_length=settings.windows.max_catchup_length,
            jobs=JobScheduler(settings.jobs, jobs, clock, end=settings.windows.end) if use_jobs else None,
            control=None
            if control_publisher is None
            else ControlReporter(
                ledger,
                settlements,
                control_publisher,
                clock=clock,
                topic=settings.kafka.topic,
                version=__version__,
                heartbeat_interval=settings.kafka.control_heartbeat_interval,
                watermark=lambda: progress.watermark,
            ),
        )
        _install_signal_handlers(connector)
        log.info(
            "connector started",
            extra={
                "version": __version__,
                "topic": settings.kafka.topic,
                "watermark": None if progress.watermark is None else progress.watermark.isoformat(),
                "resuming_passes": len(progress.in_progress),
                "metrics_url": health.url,
            },
        )
        if on_started is not None:
            on_started(connector)
        stalls.start()  # the main loop's stalls, not the blocking set-up calls above
        await connector.run()
    return ExitCode.OK


def _control_publisher(settings: Settings, metrics: ConnectorMetrics, clock: Clock) -> KafkaPublisher | None:
    """A producer for `kafka.control_topic` (its own: the data producer is bound to the data topic)."""
    topic = settings.kafka.control_topic
    if topic is None:
        return None
    config = dict(producer_settings(settings.kafka))
    config["client.id"] = f"{settings.kafka.client_id}-control"
    return KafkaPublisher(config, topic, metrics, version=__version__, clock=clock)


async def _check_genesys(client: GenesysClient, clock: Clock, policy: RetryPolicy) -> None:
    """One token and one cheap query before any data moves.

    Bad credentials or a missing permission are fatal (nothing a retry fixes); an unreachable or failing
    API (any `RetriableError`, typically the client's `RetriesExhaustedError`) is checked again after the
    retry policy's delay, without an attempt limit, because exiting would only make Kubernetes restart us
    into the same outage.
    """
    failures = 0
    while True:
        try:
            await client.check_access()
            return
        except RetriableError as exc:
            failures += 1
            delay = policy.delay_s(failures, exc)
            log.warning(
                "Genesys API not usable yet; checking again",
                extra={
                    "retry_in_s": round(delay, 1),
                    "error": str(exc),
                    "correlation_id": getattr(exc, "correlation_id", None),
                },
            )
            await clock.sleep(delay)


def _install_signal_handlers(connector: Connector) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, connector.request_stop)
        except (NotImplementedError, RuntimeError):  # not the main thread (e.g. embedded in a demo thread)
            return
