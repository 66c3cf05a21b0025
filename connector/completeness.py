"""The worker's side of completeness: feed the ledger, settle hours, report them on the control topic.

Three parts, each with one job:

- `Completeness` is what `PassRunner` calls: every page's conversations are *sightings* (source from the
  pass label: pass 0 `first_pass`, a re-scan `rescan`, the follow-up by id `follow_up`, a job `job`);
  after Kafka acknowledged a batch, its conversations are *acked* (never before). A window's last pass
  is its *settling read*: the conversations it returns are kept per hour (`Ledger.record_settling`).
- `Settlements` declares hours final. Two paths call `settled(span, expected, how, data_availability)`:
  the loop's completion path when a settling re-scan completes (a connector running query-only), and
  the jobs path when a settling job was read and acked. An hour is settled only once *every* window of it
  had its last pass (`Progress.pending_from` is past its end), so an hour read by twelve five-minute
  windows gets one event, after the last of them. Expected = the distinct conversations the settling reads
  returned for that hour, delivered = those of them Kafka acknowledged (`Ledger.settle_hour`).
- `ControlReporter` publishes each settled, unreported hour as a `range_final` message on
  `kafka.control_topic`, marks it reported once that message is acknowledged, and sends a `watermark`
  heartbeat every `kafka.control_heartbeat_interval`. It runs from the loop's housekeeping and once more
  at shutdown, so a bounded run's last hours are reported before it exits; a restart re-sends whatever was
  settled and not yet acknowledged.

The ledger is SQLite on the event-loop thread, like the change store: a page's writes are one small
transaction (microseconds to a millisecond); pruning, the slow part, runs in a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from connector.clock import Clock, format_instant
from connector.kafka.control import RangeFinal, SettledBy, Watermark, range_final_message, watermark_message
from connector.kafka.publisher import BatchResult
from connector.kafka.records import OutboundMessage
from connector.state.ledger import (
    FIRST_PASS,
    FOLLOW_UP,
    HOUR,
    JOB,
    LATE_SOURCES,
    RESCAN,
    HourSettlement,
    Ledger,
    Sighting,
    hour_of,
)
from connector.state.progress import PassKey, Progress
from connector.windows import Window

log = logging.getLogger(__name__)


#: Pass labels that are not re-scans (those are "1".."n").
_SOURCE_OF_LABEL = {"0": FIRST_PASS, "open": FOLLOW_UP, "job": JOB}


def source_of(pass_label: str) -> str:
    """The ledger source of a pass label: "0" first pass, "1".."n" re-scan, "open" follow-up, "job" job."""
    return _SOURCE_OF_LABEL.get(pass_label, RESCAN)


def conversation_start(record: Mapping[str, Any]) -> datetime | None:
    """A record's `conversationStart`, or None when absent or unreadable (such a record is not counted)."""
    value = record.get("conversationStart")
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _dated(records: Iterable[Mapping[str, Any]]) -> list[tuple[str, datetime]]:
    out = []
    for record in records:
        start = conversation_start(record)
        cid = record.get("conversationId")
        if start is not None and isinstance(cid, str):
            out.append((cid, start))
    return out


class Settlements:
    """Declares hours final (see the module docstring); the adapter both settling paths call.

    `range_start` clips the first hour's event (a fresh run starting mid-hour reads only part of it),
    `range_end` (`windows.end`) the last; `query_settles` is False when settling jobs settle instead of the
    final re-scan. `mark_reported_at_once`: no control topic, so nothing will report the hours (they may
    then be pruned like reported ones).
    """

    def __init__(
        self,
        ledger: Ledger,
        progress: Progress,
        *,
        clock: Clock,
        range_start: datetime | None,
        range_end: datetime | None,
        query_settles: bool = True,
        mark_reported_at_once: bool = False,
    ) -> None:
        self._ledger = ledger
        self._progress = progress
        self._clock = clock
        self.range_start = range_start
        self.range_end = range_end
        self.query_settles = query_settles
        self._report_at_once = mark_reported_at_once
        start = progress.pending_from() or range_start
        self._cursor: datetime | None = None if start is None else hour_of(start)

    def record_reads(self, conversations: Iterable[tuple[str, datetime]]) -> None:
        """Conversations a settling read returned (only those in the range: a window's query may also
        return conversations that started earlier and were still running)."""
        lo, hi = self.range_start, self.range_end
        self._ledger.record_settling(
            (cid, start)
            for cid, start in conversations
            if (lo is None or start >= lo) and (hi is None or start < hi)
        )

    def settled(
        self,
        span: Window,
        expected: Mapping[str, datetime],
        how: SettledBy,
        data_availability: datetime | None = None,
    ) -> list[datetime]:
        """A settling read of `span` is complete and acked: settle every hour now wholly read for the last
        time. `expected` are the conversations (id -> start) it returned, if not recorded page by page
        already. Returns the hours settled (their start)."""
        self.record_reads(expected.items())
        if self._cursor is None:
            self._cursor = hour_of(span.start)
        through = self._progress.pending_from()
        if through is None:
            return []
        settled: list[datetime] = []
        hour = self._cursor
        while self._hour_end(hour) <= through and (self.range_end is None or hour < self.range_end):
            self._settle(hour, how, data_availability)
            settled.append(hour)
            hour += HOUR
        self._cursor = hour
        return settled

    def settled_through(self) -> datetime | None:
        """Every hour before this instant is settled (None before the first one)."""
        if self._cursor is None:
            return None
        if self.range_end is not None and self._cursor >= self.range_end:
            return self.range_end
        return self._cursor

    def event_range(self, hour: datetime) -> Window:
        """The range a settled hour's event names: the hour, clipped to the configured range."""
        start = hour if self.range_start is None else max(hour, self.range_start)
        return Window(start, self._hour_end(hour))

    def _hour_end(self, hour: datetime) -> datetime:
        end = hour + HOUR
        return end if self.range_end is None else min(end, self.range_end)

    def _settle(self, hour: datetime, how: SettledBy, data_availability: datetime | None) -> None:
        now = self._clock.now()
        result = self._ledger.settle_hour(
            hour,
            settled_by=how,
            at=now,
            data_availability_date=None if data_availability is None else format_instant(data_availability),
        )
        extra = {
            "hour": format_instant(hour),
            "settled_by": how,
            "expected": result.expected,
            "delivered": result.delivered,
        }
        if result.delivered < result.expected:
            missing = self._ledger.missing_ids(hour)
            log.error(
                "settled hour is missing conversations in Kafka", extra={**extra, "missing": missing[:20]}
            )
        else:
            log.info("hour settled", extra=extra)
        if self._report_at_once:
            self._ledger.mark_reported(hour, at=now)


class Completeness:
    """What a pass tells the ledger: sightings per page, acks after Kafka, settling reads, completions."""

    def __init__(self, ledger: Ledger, settlements: Settlements, progress: Progress, *, clock: Clock) -> None:
        self.ledger = ledger
        self.settlements = settlements
        self._progress = progress
        self._clock = clock

    def seen(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        pass_label: str,
        window: Window | None,
        at: datetime,
        first_read: bool = False,
    ) -> None:
        """A page (or follow-up batch) was read: note each conversation's sighting.

        `first_read`: the page is its window's first read whatever its label - a backfill job's span is
        read by no first pass, so its conversations are first-pass sightings, not late finds (only a
        settling job can find what the first read missed).
        """
        source = FIRST_PASS if first_read else source_of(pass_label)
        interval = None if window is None else window.interval
        label = None if window is None else pass_label
        self.ledger.record_seen_many(
            (Sighting(cid, start, source, interval, label) for cid, start in _dated(records)), at=at
        )

    def settling_page(self, key: PassKey, records: Sequence[Mapping[str, Any]]) -> None:
        """A page of `key` was acked: if `key` is its window's last pass, its conversations settle hours."""
        if self.settlements.query_settles and self._progress.is_last_pass(key):
            self.settlements.record_reads(_dated(records))

    def acked(self, conversations: Iterable[tuple[str, datetime | None]], *, pass_label: str) -> None:
        """Kafka acknowledged these conversations' messages (call only after the acks)."""
        dated = [(cid, start) for cid, start in conversations if start is not None]
        self.ledger.record_acked(dated, at=self._clock.now(), source=source_of(pass_label))

    def pass_completed(self, key: PassKey, *, last: bool) -> None:
        """`key` completed (every page acked); `last`: it was its window's final read."""
        if last and self.settlements.query_settles:
            self.settlements.settled(key.window, {}, "rescan")


class BatchPublishing(Protocol):
    """The control topic's producer (a `KafkaPublisher` for `kafka.control_topic`)."""

    async def publish(self, messages: Sequence[OutboundMessage]) -> BatchResult: ...


def _outbound(key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]]) -> OutboundMessage:
    return OutboundMessage(key.decode(), value, {k: v.decode() for k, v in headers})


class ControlReporter:
    """Publishes range-final events and the watermark heartbeat (see the module docstring)."""

    def __init__(
        self,
        ledger: Ledger,
        settlements: Settlements,
        publisher: BatchPublishing,
        *,
        clock: Clock,
        topic: str,
        version: str,
        heartbeat_interval: timedelta,
        watermark: Callable[[], datetime | None],
    ) -> None:
        self._ledger = ledger
        self._settlements = settlements
        self._publisher = publisher
        self._clock = clock
        self._topic = topic
        self._version = version
        self._interval_s = heartbeat_interval.total_seconds()
        self._watermark = watermark
        self._next_beat = clock.monotonic()

    def next_in_s(self) -> float:
        """Seconds until the next heartbeat is due."""
        return max(0.0, self._next_beat - self._clock.monotonic())

    async def report(self, *, beat: bool = False) -> int:
        """Send the unreported range-final events (and the heartbeat when due or `beat`); returns how many
        events Kafka acknowledged. A failed delivery is retried at the next call: nothing is marked."""
        events = [self._event(s.hour, s) for s in self._ledger.unreported_settlements()]
        sent = 0
        if events:
            result = await self._publisher.publish([m for _, m in events])
            failed = {f.key for f in result.failures}
            now = self._clock.now()
            for hour, message in events:
                if message.key not in failed:
                    self._ledger.mark_reported(hour, at=now)
                    sent += 1
            if failed:
                log.warning("range-final events not delivered; retrying later", extra={"failed": len(failed)})
        if beat or self._clock.monotonic() >= self._next_beat:
            await self._beat()
        return sent

    def _event(self, hour: datetime, settlement: HourSettlement) -> tuple[datetime, OutboundMessage]:
        counts = self._ledger.hour_counts(hour)
        span = self._settlements.event_range(hour)
        dad = settlement.data_availability_date
        message = range_final_message(
            RangeFinal(
                start=span.start,
                end=span.end,
                topic=self._topic,
                expected=settlement.expected,
                delivered=settlement.delivered,
                settled_by="job" if settlement.settled_by == "job" else "rescan",
                settled_at=settlement.settled_at,
                connector_version=self._version,
                data_availability_date=None
                if dad is None
                else datetime.fromisoformat(dad.replace("Z", "+00:00")),
                found_late={s: counts.by_source[s] for s in LATE_SOURCES if counts.by_source.get(s)},
            )
        )
        return hour, _outbound(message.key, message.value, message.headers)

    async def _beat(self) -> None:
        self._next_beat = self._clock.monotonic() + self._interval_s
        message = watermark_message(
            Watermark(
                watermark=self._watermark(),
                settled_through=self._settlements.settled_through(),
                emitted_at=self._clock.now(),
                topic=self._topic,
                connector_version=self._version,
            )
        )
        result = await self._publisher.publish([_outbound(message.key, message.value, message.headers)])
        if not result.ok:
            log.warning("watermark heartbeat not delivered; the next one follows")


class LedgerPruning:
    """The ledger as a `PrunableStore` of the change store's prune timer (`connector.state.pruning`).

    Settled and reported hours are dropped past the change store's horizon (the cutoff it is given): until
    then `verify` can compare them with the ledger; every hour past `horizon` (the follow-up horizon,
    31 days: nothing reads those hours again) is dropped whatever its state.
    """

    def __init__(self, ledger: Ledger, *, horizon: timedelta, clock: Clock) -> None:
        self._ledger = ledger
        self._horizon = horizon
        self._clock = clock

    def prune(self, older_than: datetime) -> int:
        dropped = self._ledger.prune(settled_before=older_than, all_before=self._clock.now() - self._horizon)
        if dropped:
            log.info("completeness ledger pruned", extra={"conversations": dropped})
        return dropped


class JobSettlements:
    """The jobs path's settlement listener (`connector.job_passes.SettlementListener`): a span whose settling
    job was read to its end and acked settles its hours through the same `Settlements` as the query path,
    `how="job"`, with the job's whole result set as the expected conversations."""

    def __init__(self, settlements: Settlements) -> None:
        self._settlements = settlements

    def on_settled(
        self,
        span: Window,
        conversations: frozenset[tuple[str, datetime | None]],
        data_availability_date: datetime | None,
    ) -> None:
        expected = {cid: start for cid, start in conversations if start is not None}
        self._settlements.settled(span, expected, "job", data_availability_date)
