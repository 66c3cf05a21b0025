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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol, TextIO

import orjson

from connector.clock import Clock, SystemClock, format_instant
from connector.config import FilterSettings, Settings
from connector.errors import CheckpointError, ConnectorError, ExitCode
from connector.genesys.client import GenesysClient
from connector.genesys.fetcher import RequestTally, WindowFetcher
from connector.genesys.jobs import JobPage, JobRunner, build_job_body
from connector.librdkafka import consumer_settings
from connector.metrics import ConnectorMetrics
from connector.secrets import SecretRegistry
from connector.state.ledger import LEDGER_FILE, Ledger
from connector.windows import Window

log = logging.getLogger(__name__)

#: Reads of the query reference, united (see the module docstring).
QUERY_REFERENCE_READS = 2
#: Longest window one reference query covers (the API takes 31 days; a day keeps pages few and each
#: window on one daily index, genesys-api.md §1.3).
REFERENCE_CHUNK = timedelta(days=1)
VERIFY_MAX_CONCURRENCY = 2
LISTED_IDS = 100  # missing/extra ids listed in the JSON output, at most


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


# --------------------------------------------------------------------------------------------- reference
@dataclass
class ReferenceSet:
    """Conversations Genesys has (id -> conversationStart) and which parts of the range are provisional."""

    starts: dict[str, datetime] = field(default_factory=dict)
    provisional: list[Window] = field(default_factory=list)
    sources: list[tuple[Window, str]] = field(default_factory=list)

    def is_provisional(self, period: Window) -> bool:
        return any(w.start < period.end and period.start < w.end for w in self.provisional)


class Reference(Protocol):
    """One way to ask Genesys which conversations started in a window."""

    name: str
    provisional: bool

    async def conversations(self, window: Window) -> dict[str, datetime]: ...


ProgressFn = Callable[[str], None]


class QueryReference:
    """The details query, tie-safe, read `reads` times and united; provisional (see module docstring)."""

    name = "query"
    provisional = True

    def __init__(
        self, fetcher: WindowFetcher, *, reads: int = QUERY_REFERENCE_READS, progress: ProgressFn
    ) -> None:
        self._fetcher = fetcher
        self._reads = max(1, reads)
        self._progress = progress
        self._tally = RequestTally()
        self.second_read_added = 0

    @property
    def requests(self) -> int:
        """Query requests made so far (tie re-reads included)."""
        return self._tally.count

    async def conversations(self, window: Window) -> dict[str, datetime]:
        found: dict[str, datetime] = {}
        for read in range(self._reads):
            before = len(found)
            chunk = window.start
            while chunk < window.end:
                part = Window(chunk, min(window.end, _next_day(chunk)))
                async for page in self._fetcher.fetch(part, 0, tally=self._tally):
                    for conversation in page.conversations:
                        start = _start(conversation)
                        cid = conversation.get("conversationId")
                        if start is not None and isinstance(cid, str) and window.start <= start < window.end:
                            found[cid] = start
                    self._progress(
                        f"Genesys read {read + 1}/{self._reads}: up to {format_instant(part.start)}, "
                        f"{len(found)} conversations, {self.requests} requests"
                    )
                chunk = part.end
            if read > 0:
                self.second_read_added += len(found) - before
        return found


class JobReference:
    """Async jobs over whole UTC days (as the backfill reads them); the data lake's fixed result set, so
    not provisional. Only asked about windows before `dataAvailabilityDate` (`plan_reference`)."""

    name = "job"
    provisional = False

    def __init__(self, runner: JobRunner, filters: FilterSettings, *, progress: ProgressFn) -> None:
        self._runner = runner
        self._filters = filters
        self._progress = progress
        self.jobs = 0
        self.pages = 0

    async def conversations(self, window: Window) -> dict[str, datetime]:
        found: dict[str, datetime] = {}
        day = _next_day(window.start) - REFERENCE_CHUNK
        while day < window.end:
            span = Window(day, day + REFERENCE_CHUNK)
            self.jobs += 1
            async for event in self._runner.run(span, build_job_body(span, self._filters)):
                if not isinstance(event, JobPage):
                    continue
                self.pages += 1
                for conversation in event.conversations:
                    start = _start(conversation)
                    cid = conversation.get("conversationId")
                    if start is not None and isinstance(cid, str) and window.start <= start < window.end:
                        found[cid] = start
                self._progress(f"Genesys job for {span.start:%Y-%m-%d}: {len(found)} conversations")
            day = span.end
        return found


async def read_data_availability(runner: JobRunner) -> tuple[datetime | None, str | None]:
    """`dataAvailabilityDate`, or None and why (the OAuth client may lack the jobs permission)."""
    try:
        return await runner.read_availability(), None
    except ConnectorError as exc:
        return None, f"the data lake's availability could not be read ({exc}): query reference only"


def _next_day(moment: datetime) -> datetime:
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + REFERENCE_CHUNK


def _start(conversation: Mapping[str, object]) -> datetime | None:
    text = conversation.get("conversationStart")
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def plan_reference(
    start: datetime, end: datetime, data_availability: datetime | None
) -> list[tuple[Window, str]]:
    """Which part of `[start, end)` a settled reference (job) can answer and which the tail (query) must.

    The data lake holds conversations that started before `dataAvailabilityDate` (genesys-api.md §2.5):
    `[start, min(end, dataAvailabilityDate))` is "settled", the rest "tail".
    """
    if data_availability is None or data_availability <= start:
        return [(Window(start, end), "tail")]
    if data_availability >= end:
        return [(Window(start, end), "settled")]
    return [(Window(start, data_availability), "settled"), (Window(data_availability, end), "tail")]


async def collect_reference(
    start: datetime,
    end: datetime,
    *,
    tail: Reference,
    settled: Reference | None = None,
    data_availability: datetime | None = None,
) -> ReferenceSet:
    """The reference for `[start, end)`.

    Wave-2 seam: pass `settled` (a jobs-backed `Reference`, provisional=False) and the current
    `dataAvailabilityDate`; the range the data lake holds is then answered by it and only the tail by the
    provisional query. Without `settled`, the whole range is the tail.
    """
    result = ReferenceSet()
    for window, part in plan_reference(start, end, data_availability if settled is not None else None):
        source = settled if part == "settled" and settled is not None else tail
        result.starts.update(await source.conversations(window))
        result.sources.append((window, source.name))
        if source.provisional:
            result.provisional.append(window)
    return result


# --------------------------------------------------------------------------------------------- compare
@dataclass(frozen=True)
class PeriodRow:
    """One line of the table."""

    period: Window
    in_genesys: int
    in_kafka: int
    missing: int
    extra: int
    provisional: bool
    in_ledger: int | None = None
    found_late: int | None = None


@dataclass(frozen=True)
class Report:
    """The whole comparison."""

    start: datetime
    end: datetime
    rows: list[PeriodRow]
    missing_ids: list[str]
    extra_ids: list[str]
    kafka_source: str  # "topic" | "ledger"
    reference_sources: list[tuple[Window, str]]
    notes: list[str] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return sum(r.missing for r in self.rows)

    @property
    def extra(self) -> int:
        return sum(r.extra for r in self.rows)

    @property
    def exit_code(self) -> int:
        return ExitCode.MISSING if self.missing else ExitCode.OK


def periods(start: datetime, end: datetime, *, hourly: bool) -> list[Window]:
    """The table's rows: UTC hours or days covering `[start, end)`, clipped to it."""
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    first = start.replace(minute=0, second=0, microsecond=0)
    if not hourly:
        first = first.replace(hour=0)
    out: list[Window] = []
    cursor = first
    while cursor < end:
        out.append(Window(max(cursor, start), min(cursor + step, end)))
        cursor += step
    return out


def compare(
    reference: ReferenceSet,
    kafka: Mapping[str, datetime | None],
    start: datetime,
    end: datetime,
    *,
    hourly: bool,
    kafka_source: str,
    ledger_acked: Mapping[str, datetime] | None = None,
    late: Mapping[str, datetime] | None = None,
) -> Report:
    """Compare the reference with what Kafka holds, per period of conversation start.

    `kafka` maps keys to conversationStart (None when the value does not say: such a key counts as present
    for a conversation of the reference and is otherwise ignored, as it cannot be dated). `ledger_acked`
    (id -> hour) adds the ledger's count per period when Kafka was read from the topic; `late` (id -> hour)
    the ledger's late finds.
    """
    rows_of = periods(start, end, hourly=hourly)

    def row_index(moment: datetime) -> int | None:
        for i, period in enumerate(rows_of):
            if period.start <= moment < period.end:
                return i
        return None

    genesys = [set[str]() for _ in rows_of]
    present = [set[str]() for _ in rows_of]
    for cid, when in reference.starts.items():
        i = row_index(when)
        if i is not None:
            genesys[i].add(cid)
    for cid, dated in kafka.items():
        moment = dated if dated is not None else reference.starts.get(cid)
        if moment is None:
            continue
        i = row_index(moment.astimezone(UTC))
        if i is not None:
            present[i].add(cid)
    rows: list[PeriodRow] = []
    missing_ids: list[str] = []
    extra_ids: list[str] = []
    for i, period in enumerate(rows_of):
        missing = sorted(genesys[i] - present[i])
        extra = sorted(present[i] - genesys[i])
        missing_ids += missing
        extra_ids += extra
        rows.append(
            PeriodRow(
                period=period,
                in_genesys=len(genesys[i]),
                in_kafka=len(present[i]),
                missing=len(missing),
                extra=len(extra),
                provisional=reference.is_provisional(period),
                in_ledger=None if ledger_acked is None else _count_in(ledger_acked, period),
                found_late=None if late is None else _count_in(late, period),
            )
        )
    return Report(start, end, rows, missing_ids, extra_ids, kafka_source, list(reference.sources))


def _count_in(hours: Mapping[str, datetime], period: Window) -> int:
    """Ledger entries (dated by hour) of a period; a partial hour at an edge counts whole."""
    return sum(1 for hour in hours.values() if period.start < hour + timedelta(hours=1) and hour < period.end)


# --------------------------------------------------------------------------------------------- output
def render_table(report: Report, *, hourly: bool) -> str:
    """The human table; a line per period and a total."""
    label = "hour (UTC)" if hourly else "day (UTC)"
    ledger = any(r.in_ledger is not None for r in report.rows)
    head = [label, "in Genesys", f"in Kafka ({report.kafka_source})", "missing", "extra", "provisional"]
    if ledger:
        head += ["in ledger", "found late"]
    lines = [head]
    for r in report.rows:
        name = r.period.start.strftime("%Y-%m-%d %H:00" if hourly else "%Y-%m-%d")
        line = [
            name,
            str(r.in_genesys),
            str(r.in_kafka),
            str(r.missing),
            str(r.extra),
            "yes" if r.provisional else "no",
        ]
        if ledger:
            line += [_opt(r.in_ledger), _opt(r.found_late)]
        lines.append(line)
    total = [
        "total",
        str(sum(r.in_genesys for r in report.rows)),
        str(sum(r.in_kafka for r in report.rows)),
        str(report.missing),
        str(report.extra),
        "yes" if any(r.provisional for r in report.rows) else "no",
    ]
    if ledger:
        total += [
            str(sum(r.in_ledger or 0 for r in report.rows)),
            str(sum(r.found_late or 0 for r in report.rows)),
        ]
    lines.append(total)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = [
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(line))
        for line in lines
    ]
    text.insert(1, "  ".join("-" * w for w in widths))
    text.insert(-1, "  ".join("-" * w for w in widths))
    verdict = (
        f"MISSING: {report.missing} conversation(s) Genesys has are not in Kafka"
        if report.missing
        else "OK: nothing missing"
    )
    if any(r.provisional for r in report.rows):
        verdict += " (provisional: read with the details query; late indexing may still add conversations)"
    return "\n".join([*text, "", verdict, *report.notes])


def _opt(value: int | None) -> str:
    return "-" if value is None else str(value)


def render_json(report: Report) -> str:
    """Machine-readable report (stable keys)."""
    data = {
        "from": format_instant(report.start),
        "to": format_instant(report.end),
        "kafka_source": report.kafka_source,
        "reference": [{"interval": w.interval, "source": s} for w, s in report.reference_sources],
        "missing": report.missing,
        "extra": report.extra,
        "provisional": any(r.provisional for r in report.rows),
        "periods": [
            {
                "start": format_instant(r.period.start),
                "end": format_instant(r.period.end),
                "in_genesys": r.in_genesys,
                "in_kafka": r.in_kafka,
                "missing": r.missing,
                "extra": r.extra,
                "provisional": r.provisional,
                "in_ledger": r.in_ledger,
                "found_late": r.found_late,
            }
            for r in report.rows
        ],
        "missing_ids": report.missing_ids[:LISTED_IDS],
        "extra_ids": report.extra_ids[:LISTED_IDS],
        "notes": report.notes,
    }
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()


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
