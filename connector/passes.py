"""One window pass: pages from the fetcher -> changed snapshots -> Kafka -> acked progress.

For every page the runner keeps only the conversations whose content hash differs from the last one
published (the `ChangeStore`, plus snapshots still waiting for their acks), publishes them as one batch,
waits for Kafka to acknowledge the batch, and only then records the hashes and tells `Progress` that the
page is done. A delivery failure raises `BatchNotDelivered`: nothing of that page is recorded, so the
pass is retried from the same page and nothing is lost.

Per conversation, snapshots are produced in the order they were observed: pages are handled one at a
time per pass, produce order is call order, and a snapshot older than one already produced for the same
conversation (observed earlier by another pass that was slower to get here) is dropped as stale.

Job passes (`PassKey.job`: a backfill span or a settling job, docs/ARCHITECTURE.md "Jobs and the query")
go through the same select/publish/ack path, page by page, with `genesys.pass: job`; after each acked
page `Progress` learns the job cursor to resume at. Job records carry participant attributes, which the
query never returns: a later query or multi-get snapshot of such a conversation gets the last job
snapshot's attributes carried over (by participantId, header `genesys.attributes: carried`) before it is
hashed, so the latest message per key never loses them (unless a later job shows Genesys removed them).
A pass that settles its span (its job read the span after the data lake passed it + `jobs.settle_delay`)
tells the `SettlementListener`.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import orjson

from connector.clock import Clock, SystemClock
from connector.completeness import Completeness
from connector.errors import BatchNotDelivered, DeliveryError, FatalError
from connector.genesys.fetcher import Page, RequestTally
from connector.genesys.jobs import JobEvent, JobPage, JobRestarted, JobResume, JobSubmitted
from connector.jobs_plan import settlement_due
from connector.kafka.publisher import BatchResult, DeliveryFailure
from connector.kafka.records import (
    OutboundMessage,
    PassLabel,
    WindowLike,
    build_message,
    encode_record,
    value_hash,
)
from connector.metrics import ConnectorMetrics
from connector.state.changes import ChangeStore
from connector.state.checkpoint import JobCursor
from connector.state.progress import JOB_LABEL, PassKey, Progress
from connector.windows import Window

log = logging.getLogger(__name__)

#: `genesys.pass` header and metric label of snapshots from following open conversations by id.
FOLLOW_LABEL: Literal["open"] = "open"


class PageSource(Protocol):
    """What a pass reads from (the `WindowFetcher`, or a fake in tests)."""

    def fetch(
        self,
        window: Window,
        pass_no: int,
        *,
        start_page: int = 1,
        tally: RequestTally | None = None,
    ) -> AsyncIterator[Page]: ...

    async def follow_open(self, ids: Sequence[str]) -> list[dict[str, Any]]: ...


class JobSource(Protocol):
    """What a job pass reads from (`connector.genesys.jobs.JobRunner`, or a fake in tests)."""

    def run(
        self, span: Window, body: Mapping[str, Any], *, resume: JobResume | None = None
    ) -> AsyncIterator[JobEvent]: ...


#: One conversation a settling job returned: (conversationId, conversationStart or None if unreadable).
SettledConversation = tuple[str, datetime | None]


class SettlementListener(Protocol):
    """Told when a span becomes *settled*: the job that settles it was read to its last page and every
    snapshot it changed is acknowledged by Kafka (the completeness ledger and range-final events hook in
    here).

    `conversations` is the job's whole result set for the span (every conversation that started in it, as
    the data lake held it at `data_availability_date`), published or unchanged. Called once per settled
    span from the loop thread; keep it quick (no I/O that blocks for long). A span whose job was resumed
    mid-way after a restart (so the set would be partial) is not reported: it waits for a settling job.
    """

    def on_settled(
        self,
        span: Window,
        conversations: frozenset[SettledConversation],
        data_availability_date: datetime | None,
    ) -> None: ...


class NoSettlementListener:
    """The default: nobody listens."""

    def on_settled(
        self,
        span: Window,
        conversations: frozenset[SettledConversation],
        data_availability_date: datetime | None,
    ) -> None:
        return None


class BatchPublisher(Protocol):
    """Where a pass publishes (the `KafkaPublisher`, or a fake in tests)."""

    async def publish(self, messages: Sequence[OutboundMessage]) -> BatchResult: ...


@dataclass
class _Pending:
    content_hash: str
    observed_at: datetime
    attributes: bytes | None = None  # a job snapshot's participant attributes (carried before its ack)


class InFlightSnapshots:
    """Snapshots produced but not yet acknowledged, shared by all passes (dedupe and ordering).

    It also remembers, for a bounded number of recently acknowledged conversations, when the published
    snapshot was observed, so that an older observation handled later by a slower pass is recognised as
    stale instead of overwriting the newer one downstream.
    """

    def __init__(self, *, remember: int = 20_000) -> None:
        self._by_id: dict[str, _Pending] = {}
        self._acked: OrderedDict[str, datetime] = OrderedDict()
        self._remember = remember

    def get(self, cid: str) -> _Pending | None:
        return self._by_id.get(cid)

    def is_stale(self, cid: str, observed_at: datetime) -> bool:
        """True if a newer observation of `cid` is in flight or was recently acknowledged."""
        pending = self._by_id.get(cid)
        if pending is not None and pending.observed_at > observed_at:
            return True
        acked = self._acked.get(cid)
        return acked is not None and acked > observed_at

    def add(self, cid: str, digest: str, observed_at: datetime, attributes: bytes | None = None) -> None:
        self._by_id[cid] = _Pending(digest, observed_at, attributes)

    def attributes(self, cid: str) -> bytes | None:
        """The attributes of a job snapshot of `cid` on its way to Kafka (None: none in flight)."""
        pending = self._by_id.get(cid)
        return None if pending is None else pending.attributes

    def newer_acked(self, cid: str, observed_at: datetime) -> bool:
        """True if a snapshot observed after `observed_at` was already acknowledged (acks out of order)."""
        acked = self._acked.get(cid)
        return acked is not None and acked > observed_at

    def acked(self, cid: str, observed_at: datetime) -> None:
        """Remember the latest acknowledged observation (acks may arrive out of order)."""
        previous = self._acked.get(cid)
        self._acked[cid] = observed_at if previous is None else max(previous, observed_at)
        self._acked.move_to_end(cid)
        if len(self._acked) > self._remember:
            self._acked.popitem(last=False)

    def release(self, cid: str, digest: str) -> None:
        current = self._by_id.get(cid)
        if current is not None and current.content_hash == digest:
            del self._by_id[cid]


@dataclass(frozen=True)
class _Selected:
    message: OutboundMessage
    cid: str
    digest: str
    start: datetime | None
    ended: bool
    attributes: bytes | None = None  # job snapshots: the participants' attributes, stored once acked


class PassRunner:
    """Runs window passes; shared by every concurrent pass of one connector."""

    def __init__(
        self,
        *,
        fetcher: PageSource,
        publisher: BatchPublisher,
        changes: ChangeStore,
        progress: Progress,
        metrics: ConnectorMetrics,
        in_flight: InFlightSnapshots,
        clock: Clock | None = None,
        jobs: JobSource | None = None,
        job_body: Callable[[Window], Mapping[str, Any]] | None = None,
        settle_delay: timedelta = timedelta(hours=24),
        settlement: SettlementListener | None = None,
        completeness: Completeness | None = None,
    ) -> None:
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._completeness = completeness
        self._fetcher = fetcher
        self._publisher = publisher
        self._changes = changes
        self._progress = progress
        self._metrics = metrics
        self._in_flight = in_flight
        self._jobs = jobs
        self._job_body = job_body
        self._settle_delay = settle_delay
        self._settlement: SettlementListener = settlement or NoSettlementListener()

    async def run(self, key: PassKey, *, start_page: int, should_stop: Callable[[], bool]) -> bool:
        """Fetch and publish the pass from `start_page`; True when complete, False when stopped early.

        A job pass resumes at its saved job cursor instead (`start_page` means nothing to it)."""
        if key.job:
            return await self._run_job(key, should_stop)
        tally, counted = RequestTally(), 0
        try:
            async for page in self._fetcher.fetch(
                key.window, key.pass_no, start_page=start_page, tally=tally
            ):
                counted = self._count_requests(key, tally.count, counted)
                await self._handle_page(key, page)
                if should_stop():
                    return False
        finally:  # the requests after the last page (the empty one), or of a pass that failed
            self._count_requests(key, tally.count, counted)
        last = self._progress.is_last_pass(key)
        self._progress.complete(key)
        if self._completeness is not None:
            self._completeness.pass_completed(key, last=last)
        self._metrics.windows_completed.labels(key.label).inc()
        return True

    def _count_requests(self, key: PassKey, made: int, counted: int) -> int:
        """Account the pass's requests made since the last count (`made - counted`); returns `made`."""
        if made > counted:
            self._metrics.query_requests.labels(key.label).inc(made - counted)
            self._progress.add_stat(f"query_requests_pass_{key.pass_no}", made - counted)
        return made

    async def _handle_page(self, key: PassKey, page: Page) -> None:
        label = key.label
        self._metrics.pages_fetched.labels(label).inc()
        self._metrics.conversations_fetched.labels(label).inc(len(page.conversations))
        self._progress.add_stat(f"fetched_pass_{key.pass_no}", len(page.conversations))
        if self._completeness is not None:
            self._completeness.seen(
                page.conversations, pass_label=label, window=key.window, at=page.received_at
            )
        records, carried = self._carry_attributes(page.conversations)
        selected, unchanged = self._select(
            records,
            page.received_at,
            window_of=lambda _record: key.window,
            pass_label=key.pass_no,
            carried=carried,
        )
        if unchanged:
            self._metrics.conversations_unchanged.inc(unchanged)
        if selected:
            await self._deliver(selected, page.received_at, label=label, context=(key, page.page_number))
        open_ids = [c["conversationId"] for c in page.conversations if "conversationEnd" not in c]
        self._progress.open.note_open(open_ids, page.received_at)  # followed by id from now on
        self._progress.open.note_ended(s.cid for s in selected if s.ended)
        if self._completeness is not None:
            self._completeness.settling_page(key, page.conversations)
        self._progress.page_acked(key, page.page_number)

    async def follow_open(self, ids: Sequence[str]) -> int:
        """Re-fetch conversations seen in progress, by id; publish the ones that changed (their end).

        Called for the ids `OpenConversations.due()` names, from their first sighting on: the end of a
        conversation reaches Kafka within one follow interval instead of at the next re-scan (hours), and
        one open for days (an e-mail thread) is seen ending at all, although the details query returns it
        only to windows on its start day. Returns how many were published. Ids Genesys no longer returns
        are forgotten; the others are due again one interval later.
        """
        observed = self._clock.now()
        records = await self._fetcher.follow_open(ids)
        self._metrics.query_requests.labels(FOLLOW_LABEL).inc(-(-len(ids) // 100))
        if self._completeness is not None:
            self._completeness.seen(records, pass_label=FOLLOW_LABEL, window=None, at=observed)
        records, carried = self._carry_attributes(records)
        selected, unchanged = self._select(
            records,
            observed,
            window_of=lambda r: _Lifetime.of(r, observed),
            pass_label=FOLLOW_LABEL,
            carried=carried,
        )
        if unchanged:
            self._metrics.conversations_unchanged.inc(unchanged)
        if selected:
            await self._deliver(selected, observed, label=FOLLOW_LABEL, context=None)
        self._refresh_unchanged(records, {s.cid for s in selected}, observed)
        returned = {r["conversationId"] for r in records}
        self._progress.open.note_ended(r["conversationId"] for r in records if "conversationEnd" in r)
        self._progress.open.note_ended(cid for cid in ids if cid not in returned)
        self._progress.open.followed(ids, observed)
        return len(selected)

    def _refresh_unchanged(
        self, records: Sequence[dict[str, Any]], published: set[str], seen: datetime
    ) -> None:
        """Keep the change-store entries of followed, unchanged conversations from being pruned.

        The store forgets conversations not seen for longer than the re-scan horizon; a conversation
        followed for weeks without changing would otherwise be published again, identical, once pruned.
        """
        rest = [r for r in records if r["conversationId"] not in published]
        stored = self._changes.get_many([r["conversationId"] for r in rest])
        items = []
        for record in rest:
            cid = record["conversationId"]
            digest = value_hash(encode_record(record))
            if stored.get(cid) == digest:
                items.append((cid, digest, _start(record)))
        if items:
            self._changes.put_many(items, seen)

    def _select(
        self,
        records: Sequence[dict[str, Any]],
        observed_at: datetime,
        *,
        window_of: Callable[[dict[str, Any]], WindowLike],
        pass_label: PassLabel,
        carried: set[str] | frozenset[str] = frozenset(),
    ) -> tuple[list[_Selected], int]:
        """The records whose content differs from what was last published for their conversation."""
        published = self._changes.get_many([c["conversationId"] for c in records])
        selected: list[_Selected] = []
        unchanged = 0
        for record in records:
            cid = record["conversationId"]
            if self._in_flight.is_stale(cid, observed_at):
                unchanged += 1  # a newer observation of this conversation is already published or on its way
                continue
            value = encode_record(record)  # canonical JSON, serialised once: hashed and published as is
            digest = value_hash(value)
            pending = self._in_flight.get(cid)
            last = pending.content_hash if pending is not None else published.get(cid)
            if last == digest:
                unchanged += 1
                continue
            message = build_message(
                record,
                window=window_of(record),
                pass_label=pass_label,
                observed_at=observed_at,
                value=value,
                record_hash=digest,
                attributes_carried=cid in carried,
            )
            attrs = _attributes_json(record) if pass_label == JOB_LABEL else None
            selected.append(
                _Selected(message, cid, digest, _start(record), "conversationEnd" in record, attrs)
            )
        return selected, unchanged

    async def _deliver(
        self,
        selected: list[_Selected],
        observed_at: datetime,
        *,
        label: str,
        context: tuple[PassKey, int] | None,
    ) -> None:
        for s in selected:
            self._in_flight.add(s.cid, s.digest, observed_at, s.attributes)
        try:
            result = await self._publisher.publish([s.message for s in selected])
            if not result.ok:
                _raise_if_permanent(result.failures)
                key, page_number = context if context is not None else (None, 0)
                raise BatchNotDelivered(key, page_number, [f.error for f in result.failures])
            # Record the hashes before releasing the in-flight entries, so no concurrent pass ever sees
            # neither and publishes the same snapshot twice. A newer snapshot of the same conversation
            # whose batch was acknowledged first keeps its hash: Kafka's latest message is that one.
            current = [s for s in selected if not self._in_flight.newer_acked(s.cid, observed_at)]
            attributes = {s.cid: s.attributes for s in current if s.attributes is not None}
            self._changes.put_many(
                ((s.cid, s.digest, s.start) for s in current), observed_at, attributes=attributes
            )
            for s in current:
                self._in_flight.acked(s.cid, observed_at)
            if self._completeness is not None:  # after the acks, never before
                self._completeness.acked(((s.cid, s.start) for s in selected), pass_label=label)
        finally:
            for s in selected:
                self._in_flight.release(s.cid, s.digest)
        self._metrics.conversations_published.labels(label).inc(len(selected))
        self._metrics.conversations_delivered.labels("job" if label == JOB_LABEL else "query").inc(
            len(selected)
        )
        self._progress.add_stat("published", len(selected))

    # ------------------------------------------------------------------------------- attributes
    def _carry_attributes(self, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], set[str]]:
        """Query/multi-get records with the participant attributes of the last job snapshot carried over.

        Only participants without `attributes` get them, matched by participantId; returns the records
        (copies where something was carried) and the ids of those conversations. A job snapshot still
        waiting for its ack counts as the last one (a follow-up may run while a job page is in flight).
        """
        stored = self._changes.attributes_many([r["conversationId"] for r in records])
        out: list[dict[str, Any]] = []
        carried: set[str] = set()
        for record in records:
            cid = record["conversationId"]
            raw = self._in_flight.attributes(cid) or stored.get(cid)  # a job snapshot not yet acked first
            merged = None if raw is None else with_attributes(record, orjson.loads(raw))
            if merged is None:
                out.append(record)
            else:
                out.append(merged)
                carried.add(record["conversationId"])
        return out, carried

    # ------------------------------------------------------------------------------- job passes
    async def _run_job(self, key: PassKey, should_stop: Callable[[], bool]) -> bool:
        """Read `key`'s span through a job, page by page, from its saved cursor; True when complete.

        A settling job that was saved re-reads its (unexpired) job from the first page, so the set it
        reports to the `SettlementListener` is whole; a backfill span continues at its cursor.
        """
        if self._jobs is None or self._job_body is None:
            raise FatalError(f"a job pass for {key.window.interval} but no job runner is configured")
        saved = self._progress.job_cursors.get(key)
        resume = None
        if saved is not None:
            cursor = None if key.settling else saved.cursor
            resume = JobResume(saved.job_id, cursor, saved.submitted_at)
        whole = resume is None or resume.cursor is None
        submitted_at = None if saved is None else saved.submitted_at
        seen: set[SettledConversation] = set()
        availability: datetime | None = None
        events = self._jobs.run(key.window, self._job_body(key.window), resume=resume)
        try:
            async for event in events:
                if isinstance(event, JobSubmitted):
                    submitted_at = event.submitted_at
                    self._progress.job_at(key, JobCursor(job_id=event.job_id, submitted_at=submitted_at))
                    self._progress.add_stat("jobs_submitted", 1)
                elif isinstance(event, JobRestarted):
                    self._progress.job_at(key, None)
                    self._progress.add_stat(f"jobs_restarted_{event.outcome.value}", 1)
                    seen.clear()
                    whole = True
                else:
                    await self._handle_job_page(key, event)
                    seen.update((c["conversationId"], _start(c)) for c in event.conversations)
                    availability = event.data_availability_date or availability
                    if event.last or submitted_at is None:
                        continue
                    at = JobCursor(job_id=event.job_id, cursor=event.next_cursor, submitted_at=submitted_at)
                    self._progress.job_at(key, at)
                    if should_stop():
                        return False
        finally:  # stopping early leaves the job alone: a restart resumes it at the saved cursor
            if isinstance(events, AsyncGenerator):
                await events.aclose()
        self._job_done(key, whole=whole, seen=seen, availability=availability)
        self._progress.complete(key)
        self._metrics.windows_completed.labels(key.label).inc()
        return True

    async def _handle_job_page(self, key: PassKey, page: JobPage) -> None:
        self._metrics.pages_fetched.labels(JOB_LABEL).inc()
        self._metrics.conversations_fetched.labels(JOB_LABEL).inc(len(page.conversations))
        self._progress.add_stat("fetched_jobs", len(page.conversations))
        if self._completeness is not None:
            self._completeness.seen(
                page.conversations,
                pass_label=JOB_LABEL,
                window=key.window,
                at=page.received_at,
                first_read=not key.settling,
            )
        selected, unchanged = self._select(
            page.conversations, page.received_at, window_of=lambda _record: key.window, pass_label=JOB_LABEL
        )
        if unchanged:
            self._metrics.conversations_unchanged.inc(unchanged)
        if selected:
            await self._deliver(selected, page.received_at, label=JOB_LABEL, context=(key, page.page_number))
        open_ids = [c["conversationId"] for c in page.conversations if "conversationEnd" not in c]
        self._progress.open.note_open(open_ids, page.received_at)
        self._progress.open.note_ended(s.cid for s in selected if s.ended)

    def _job_done(
        self, key: PassKey, *, whole: bool, seen: set[SettledConversation], availability: datetime | None
    ) -> None:
        """Tell the listener the span is settled, or leave it waiting for its settling job."""
        settled = key.settling or settlement_due(key.window, availability, self._settle_delay)
        if settled and whole:
            self._settlement.on_settled(key.window, frozenset(seen), availability)
        else:
            self._progress.await_settlement(key.window)


@dataclass(frozen=True)
class _Lifetime:
    """The `genesys.window` header of a followed conversation: from its start to the observation."""

    start: datetime
    end: datetime

    @classmethod
    def of(cls, record: dict[str, Any], observed_at: datetime) -> _Lifetime:
        start = _start(record) or observed_at
        return cls(min(start, observed_at), observed_at)


#: Delivery failures that replaying cannot fix: stop with a clear message instead of retrying forever.
_PERMANENT_CODES = {
    "MSG_SIZE_TOO_LARGE",
    "RECORD_LIST_TOO_LARGE",
    "_MSG_TIMED_OUT_PERMANENT",
    "TOPIC_AUTHORIZATION_FAILED",
    "_UNKNOWN_TOPIC",
}


def _raise_if_permanent(failures: Sequence[DeliveryFailure]) -> None:
    for failure in failures:
        if failure.code in _PERMANENT_CODES:
            hint = f" ({failure.hint})" if failure.hint else ""
            raise DeliveryError(
                f"Kafka refused conversation {failure.key} for good{hint}",
                kafka_error=f"{failure.code}: {failure.error}",
            )


def _attributes_json(record: Mapping[str, Any]) -> bytes:
    """`{participantId: attributes}` of a job record as JSON (`{}`: Genesys returned none)."""
    found: dict[str, Any] = {}
    for participant in record.get("participants") or ():
        if isinstance(participant, dict):
            pid, attrs = participant.get("participantId"), participant.get("attributes")
            if isinstance(pid, str) and isinstance(attrs, dict):
                found[pid] = attrs
    return orjson.dumps(found, option=orjson.OPT_SORT_KEYS)


def with_attributes(record: dict[str, Any], attributes: Mapping[str, Any]) -> dict[str, Any] | None:
    """`record` with `attributes[participantId]` set on each participant that has none (a copy), or None
    when nothing was carried (no participant matched, or every one already has attributes)."""
    participants = record.get("participants")
    if not attributes or not isinstance(participants, list):
        return None
    merged: list[Any] = []
    carried = False
    for participant in participants:
        pid = participant.get("participantId") if isinstance(participant, dict) else None
        if isinstance(pid, str) and pid in attributes and "attributes" not in participant:
            merged.append({**participant, "attributes": attributes[pid]})
            carried = True
        else:
            merged.append(participant)
    return {**record, "participants": merged} if carried else None


def _start(record: dict[str, Any]) -> datetime | None:
    value = record.get("conversationStart")
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
