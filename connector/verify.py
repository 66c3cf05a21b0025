"""`genesys-connector verify`: does Kafka hold every conversation Genesys has for a range? A table says.

Three sides, per day (per hour with `--hourly`) of conversation start:

- **in Genesys** - the reference. For ranges the data lake holds (before `dataAvailabilityDate`) it is
  an async job's result (`JobReference`: one job per whole UTC day, `startOfDayIntervalMatching`, as the
  backfill reads): a fixed result set, not provisional. The tail after `dataAvailabilityDate` (or all of
  the range, when the jobs API is not available to the OAuth client) is read with the details query: the
  tie-safe paging of `connector.genesys.pagination`, run twice and united (a conversation shifted out of
  view by live inserts in one read shows in the other). A query reference is **provisional**: late
  indexing can still add to it (genesys-api.md §6, §7), so the table marks it and a clean result there
  means "nothing missing *yet*".
- **in Kafka** - with `--read-topic`, the keys actually in the topic (read from the beginning to the high
  watermarks, `connector.kafka.topickeys`; the value's `conversationStart` dates each key); without it,
  what the completeness ledger (`connector.state.ledger`) says Kafka acknowledged.
- **missing / extra** - in Genesys and not in Kafka / in Kafka and not in Genesys for that period.

Exit codes: 0 nothing missing, 1 something missing, 2 bad usage or configuration, 3 could not verify
(Genesys or Kafka failed; nothing is claimed either way).

It runs beside the worker on the same OAuth client: its pacer takes `genesys.verify_budget_share` of the
budget (server rate-limit headers refine it as for the worker) and at most two requests in flight. Progress
goes to stderr, only when stderr is a terminal.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TextIO

from connector.clock import Clock, SystemClock, format_instant
from connector.config import Settings
from connector.errors import CheckpointError, ConnectorError, ExitCode
from connector.genesys.client import GenesysClient
from connector.genesys.fetcher import WindowFetcher
from connector.genesys.jobs import JobRunner
from connector.librdkafka import consumer_settings
from connector.metrics import ConnectorMetrics
from connector.secrets import SecretRegistry
from connector.state.ledger import LEDGER_FILE, Ledger
from connector.verify_reference import (
    JobReference,
    ProgressFn,
    QueryReference,
    ReferenceSet,
    collect_reference,
    read_data_availability,
)
from connector.verify_report import Report, compare, render_json, render_table

log = logging.getLogger(__name__)

VERIFY_MAX_CONCURRENCY = 2


class VerifyUsageError(ValueError):
    """Bad `verify` arguments (exit 2)."""


# --------------------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class VerifyRequest:
    """What to verify and how to print it."""

    start: datetime
    end: datetime
    read_topic: bool = False
    hourly: bool = False
    as_json: bool = False

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise VerifyUsageError("--from and --to need a timezone, e.g. 2026-05-01T00:00:00Z")
        if self.start >= self.end:
            raise VerifyUsageError(
                f"--from must be before --to (got {format_instant(self.start)} >= {format_instant(self.end)})"
            )


def parse_when(text: str, *, now: datetime, name: str) -> datetime:
    """An ISO-8601 instant (`2026-05-01T10:00:00Z`), a UTC date (`2026-05-01`), or relative (`-2d`)."""
    from connector.config import parse_duration

    value = text.strip()
    try:
        if value.startswith("-"):
            return now - parse_duration(value[1:])
        if len(value) == 10:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise VerifyUsageError(
            f"{name}: expected an ISO-8601 instant with a zone, a date or -<duration> (got {text!r})"
        ) from None
    if parsed.tzinfo is None:
        raise VerifyUsageError(
            f"{name}: the instant needs a timezone, e.g. 2026-05-01T00:00:00Z (got {text!r})"
        )
    return parsed.astimezone(UTC)


class TerminalProgress:
    """One rewritten status line on stderr, only when it is a terminal (never in logs or pipes)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._on = stream.isatty()
        self._width = 0

    def __call__(self, text: str) -> None:
        if not self._on:
            return
        line = f"verify: {text}"
        self._stream.write("\r" + line.ljust(self._width))
        self._stream.flush()
        self._width = len(line)

    def done(self) -> None:
        if self._on and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()


# --------------------------------------------------------------------------------------------- run
def verify_settings(settings: Settings) -> Settings:
    """The configuration `verify` talks to Genesys with: the verify share of the budget, two in flight."""
    share = settings.genesys.verify_budget_share
    genesys = settings.genesys.model_copy(
        update={
            "budget_share": share,
            "live_budget_share": share,
            "max_concurrency": min(VERIFY_MAX_CONCURRENCY, settings.genesys.max_concurrency),
        }
    )
    return settings.model_copy(update={"genesys": genesys})


KafkaReader = Callable[[Settings, ProgressFn], Awaitable[dict[str, datetime | None]]]


async def read_topic_keys(settings: Settings, progress: ProgressFn) -> dict[str, datetime | None]:
    """The topic's keys and starts (`--read-topic`), off the event loop."""
    from connector.kafka.topickeys import read_topic_starts

    config = consumer_settings(settings.kafka, group_id=f"genesys-connector-verify-{uuid.uuid4()}")
    return await asyncio.to_thread(
        read_topic_starts,
        config,
        settings.kafka.topic,
        progress=lambda read, total: progress(f"Kafka: {read}/{total} messages read"),
    )


async def run_verify(
    settings: Settings,
    request: VerifyRequest,
    *,
    clock: Clock | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    read_kafka: KafkaReader = read_topic_keys,
    secrets: SecretRegistry | None = None,
) -> int:
    """Run one verification and print the report; returns the exit code (see the module docstring).

    `secrets` learns each OAuth token as it arrives (the logging redactor), as for `run`.
    """
    clock = clock or SystemClock()
    out = out or sys.stdout
    err = err or sys.stderr
    progress = TerminalProgress(err)
    ledger, problem = _open_ledger(settings)
    if ledger is None and not request.read_topic:
        print(
            f"genesys-connector verify: {problem}; pass --read-topic to compare with the topic itself",
            file=err,
        )
        return ExitCode.CONFIG
    try:
        report = await _verify(settings, request, clock, ledger, progress, read_kafka, secrets)
    except ConnectorError as exc:
        progress.done()
        print(f"genesys-connector verify: could not verify: {exc}", file=err)
        return ExitCode.UNVERIFIED
    finally:
        if ledger is not None:
            ledger.close()
    progress.done()
    print(render_json(report) if request.as_json else render_table(report, hourly=request.hourly), file=out)
    return report.exit_code


def _open_ledger(settings: Settings) -> tuple[Ledger | None, str]:
    """The ledger read-only, or None and why (none yet, unreadable, newer schema)."""
    try:
        return Ledger.open(settings.checkpoint.directory, read_only=True), ""
    except CheckpointError as exc:
        if not (settings.checkpoint.directory / LEDGER_FILE).exists():
            return None, f"no completeness ledger in {settings.checkpoint.directory} to compare with"
        return None, f"the completeness ledger cannot be read ({exc})"


async def _verify(
    settings: Settings,
    request: VerifyRequest,
    clock: Clock,
    ledger: Ledger | None,
    progress: TerminalProgress,
    read_kafka: KafkaReader,
    secrets: SecretRegistry | None,
) -> Report:
    config = verify_settings(settings)
    async with GenesysClient(
        config.genesys, clock=clock, metrics=ConnectorMetrics(), secrets=secrets
    ) as client:
        tail = QueryReference(WindowFetcher(client, config, clock=clock), progress=progress)
        runner = JobRunner(client, config.jobs, clock=clock)
        availability, unavailable = await read_data_availability(runner)
        jobs = JobReference(runner, config.windows.filters, progress=progress)
        reference = await collect_reference(
            request.start,
            request.end,
            tail=tail,
            settled=None if availability is None else jobs,
            data_availability=availability,
        )
    ledger_acked = ledger.conversations(request.start, request.end, acked_only=True) if ledger else None
    late = (
        {f.conversation_id: f.hour for f in ledger.found_late(request.start, request.end)} if ledger else None
    )
    if request.read_topic:
        kafka: Mapping[str, datetime | None] = await read_kafka(settings, progress)
        source = "topic"
    else:
        assert ledger_acked is not None
        kafka = _ledger_as_kafka(ledger_acked, reference)
        source = "ledger"
    report = compare(
        reference,
        kafka,
        request.start,
        request.end,
        hourly=request.hourly,
        kafka_source=source,
        ledger_acked=ledger_acked if request.read_topic else None,
        late=late,
    )
    notes = [f"Genesys reference: {tail.requests} query requests"] if tail.requests or not jobs.jobs else []
    if jobs.jobs and availability is not None:
        notes.append(
            f"data lake (dataAvailabilityDate {format_instant(availability)}): {jobs.jobs} job(s), "
            f"{jobs.pages} result page(s)"
        )
    if unavailable:
        notes.append(unavailable)
    if tail.second_read_added:
        notes.append(
            f"the second read of the query found {tail.second_read_added} conversation(s) the first missed"
        )
    return replace(report, notes=notes)


def _ledger_as_kafka(acked: Mapping[str, datetime], reference: ReferenceSet) -> dict[str, datetime | None]:
    """The ledger's acknowledged ids dated by their start where the reference knows it, else by their hour."""
    return {cid: reference.starts.get(cid, hour) for cid, hour in acked.items()}
