"""Job passes in the PassRunner: pages published through the same select/publish/ack path, the job cursor
recorded only after acks, resume at the acknowledged cursor, the settlement hook, and participant
attributes carried over to later query / multi-get snapshots.

The job source and the publisher are in-process fakes; the change store is the real SQLite one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fakes import FakeFetcher, FakePublisher, sample

from connector.clock import FakeClock
from connector.completeness import Completeness, Settlements
from connector.genesys.fetcher import Page
from connector.genesys.jobs import JobEvent, JobOutcome, JobPage, JobRestarted, JobResume, JobSubmitted
from connector.kafka.publisher import BatchResult, DeliveryFailure
from connector.kafka.records import HEADER_ATTRIBUTES, HEADER_PASS, content_hash
from connector.metrics import ConnectorMetrics
from connector.passes import BatchNotDelivered, InFlightSnapshots, PassRunner, SettledConversation
from connector.state.changes import ChangeStore
from connector.state.checkpoint import JobCursor
from connector.state.ledger import Ledger
from connector.state.progress import SETTLING_PASS, PassKey, Progress
from connector.windows import Window

T0 = datetime(2026, 5, 1, tzinfo=UTC)
SPAN = Window(T0, T0 + timedelta(days=1))
LATER = T0 + timedelta(days=3)  # the data lake passed SPAN + settle_delay by then
SETTLE_DELAY = timedelta(hours=24)


def participant(pid: str, attributes: dict[str, str] | None) -> dict[str, Any]:
    p: dict[str, Any] = {"participantId": pid, "purpose": "customer", "sessions": []}
    if attributes is not None:
        p["attributes"] = attributes
    return p


def conv(
    cid: str, *, attrs: dict[str, str] | None = None, ended: bool = True, **extra: Any
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "conversationId": cid,
        "conversationStart": "2026-05-01T10:01:00.000Z",
        "participants": [participant(f"{cid}-p1", attrs), participant(f"{cid}-p2", None)],
        **extra,
    }
    if ended:
        record["conversationEnd"] = "2026-05-01T10:03:00.000Z"
    return record


def job_page(n: int, records: list[dict[str, Any]], *, last: bool, job: str = "job-1") -> JobPage:
    return JobPage(
        span=SPAN,
        job_id=job,
        page_number=n,
        conversations=records,
        cursor=None if n == 1 else f"{job}-c{n - 1}",
        next_cursor=None if last else f"{job}-c{n}",
        received_at=LATER,
        data_availability_date=LATER,
    )


class FakeJobs:
    """Yields scripted events per run; records the resume it was given. A script may raise at its end."""

    def __init__(self, scripts: list[list[JobEvent]]) -> None:
        self.scripts = scripts
        self.resumes: list[JobResume | None] = []

    async def run(
        self, span: Window, body: Mapping[str, Any], *, resume: JobResume | None = None
    ) -> AsyncIterator[JobEvent]:
        self.resumes.append(resume)
        for event in self.scripts[len(self.resumes) - 1]:
            await asyncio.sleep(0)
            yield event


class Listener:
    def __init__(self) -> None:
        self.settled: list[tuple[Window, frozenset[SettledConversation], datetime | None]] = []

    def on_settled(
        self,
        span: Window,
        conversations: frozenset[SettledConversation],
        data_availability_date: datetime | None,
    ) -> None:
        self.settled.append((span, conversations, data_availability_date))


class Harness:
    def __init__(self, directory: Path, scripts: list[list[JobEvent]]) -> None:
        self.metrics = ConnectorMetrics()
        self.progress = Progress(None, rescan_delays=[], version="t", fingerprint="fp", settle=True)
        self.changes = ChangeStore(directory)
        self.fetcher = FakeFetcher({})
        self.publisher = FakePublisher()
        self.jobs = FakeJobs(scripts)
        self.listener = Listener()
        self.runner = PassRunner(
            fetcher=self.fetcher,
            publisher=self.publisher,
            changes=self.changes,
            progress=self.progress,
            metrics=self.metrics,
            in_flight=InFlightSnapshots(),
            jobs=self.jobs,
            job_body=lambda span: {"interval": span.interval},
            settle_delay=SETTLE_DELAY,
            settlement=self.listener,
        )

    def run(self, key: PassKey, stop: Callable[[], bool] = lambda: False) -> bool:
        return asyncio.run(self.runner.run(key, start_page=1, should_stop=stop))


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[[list[list[JobEvent]]], Harness]]:
    made: list[Harness] = []

    def factory(scripts: list[list[JobEvent]]) -> Harness:
        h = Harness(tmp_path, scripts)
        made.append(h)
        return h

    yield factory
    for h in made:
        h.changes.close()


SUBMITTED = JobSubmitted(SPAN, "job-1", T0 + timedelta(days=2), 1)


# ------------------------------------------------------------------------------------------ backfill


def test_backfill_span_publishes_job_pages_with_the_job_label_and_completes_the_watermark(
    make: Callable[..., Harness],
) -> None:
    a, b = conv("a", attrs={"k": "1"}), conv("b", attrs={"k": "2"})
    h = make([[SUBMITTED, job_page(1, [a], last=False), job_page(2, [b], last=True)]])
    key = h.progress.begin_job_span(SPAN, T0)

    assert h.run(key) is True

    assert h.publisher.keys == ["a", "b"]
    assert {m.headers[HEADER_PASS] for m in h.publisher.messages} == {"job"}
    assert h.progress.watermark == SPAN.end
    assert key not in h.progress.in_progress
    assert sample(h.metrics, "conversations_delivered_total", path="job") == 2
    assert sample(h.metrics, "conversations_delivered_total", path="query") == 0
    # read after the data lake passed it + settle_delay: settled at once, with the whole result set
    assert h.listener.settled == [(SPAN, frozenset({("a", _start()), ("b", _start())}), LATER)]
    assert h.progress.unsettled == []


def test_job_cursor_moves_only_after_the_page_is_acknowledged(make: Callable[..., Harness]) -> None:
    a, b = conv("a"), conv("b")
    h = make([[SUBMITTED, job_page(1, [a], last=False), job_page(2, [b], last=True)]])
    key = h.progress.begin_job_span(SPAN, T0)
    seen: list[JobCursor | None] = []
    h.publisher.on_publish = lambda _msgs: seen.append(h.progress.job_cursors.get(key))
    h.publisher.results.extend([BatchResult(acked=1), BatchResult(acked=0, failures=(_failure("b"),))])

    with pytest.raises(BatchNotDelivered):
        h.run(key)

    # While page 1 was being published the saved cursor was still the job's start; page 2 was refused,
    # so the saved cursor is the one after page 1: a restart reads page 2 again.
    assert seen[0] == JobCursor(job_id="job-1", cursor=None, submitted_at=SUBMITTED.submitted_at)
    assert h.progress.job_cursors[key].cursor == "job-1-c1"
    assert h.progress.snapshot().in_progress[0].job_cursor == h.progress.job_cursors[key]


def test_stopped_backfill_resumes_its_job_at_the_acknowledged_cursor(make: Callable[..., Harness]) -> None:
    a, b = conv("a"), conv("b")
    h = make(
        [
            [SUBMITTED, job_page(1, [a], last=False), job_page(2, [b], last=True)],
            [job_page(2, [b], last=True)],
        ]
    )
    key = h.progress.begin_job_span(SPAN, T0)
    assert h.run(key, stop=lambda: True) is False  # stopped after page 1 was acked

    assert h.run(key) is True

    assert h.jobs.resumes[1] == JobResume("job-1", "job-1-c1", SUBMITTED.submitted_at)
    assert h.publisher.keys == ["a", "b"]
    # resumed mid-job: the set is partial, so the span waits for its settling job instead
    assert h.listener.settled == []
    assert h.progress.unsettled == [SPAN]


def test_a_restarted_job_is_read_again_from_its_first_page_without_republishing(
    make: Callable[..., Harness],
) -> None:
    a, b = conv("a"), conv("b")
    restarted = JobRestarted(SPAN, "job-1", JobOutcome.EXPIRED, None, 1)
    second = JobSubmitted(SPAN, "job-2", T0 + timedelta(days=2, minutes=5), 2)
    h = make(
        [
            [
                SUBMITTED,
                job_page(1, [a], last=False),
                restarted,
                second,
                job_page(1, [a], last=False, job="job-2"),
                job_page(2, [b], last=True, job="job-2"),
            ]
        ]
    )
    key = h.progress.begin_job_span(SPAN, T0)

    assert h.run(key) is True

    assert h.publisher.keys == ["a", "b"]  # `a` again from the new job: unchanged, not published twice
    assert h.progress.stats["jobs_restarted_expired"] == 1
    assert [c for c, _ in h.listener.settled[0][1]] != []
    assert len(h.listener.settled[0][1]) == 2


def test_backfill_read_before_the_lake_passed_it_waits_for_a_settling_job(
    make: Callable[..., Harness],
) -> None:
    early = JobPage(SPAN, "job-1", 1, [conv("a")], None, None, LATER, SPAN.end + timedelta(hours=1))
    h = make([[SUBMITTED, early]])
    key = h.progress.begin_job_span(SPAN, T0)

    assert h.run(key) is True

    assert h.listener.settled == []
    assert h.progress.unsettled == [SPAN]
    assert h.progress.snapshot().unsettled[0].window_start == SPAN.start


def test_a_saved_settling_job_is_reread_from_its_first_page_so_the_settled_set_is_whole(
    make: Callable[..., Harness],
) -> None:
    a, b = conv("a"), conv("b")
    h = make([[job_page(1, [a], last=False), job_page(2, [b], last=True)]])
    key = PassKey(SPAN, SETTLING_PASS, job=True)
    h.progress.in_progress[key] = 1
    h.progress.job_cursors[key] = JobCursor(
        job_id="job-1", cursor="job-1-c1", submitted_at=SUBMITTED.submitted_at
    )

    assert h.run(key) is True

    assert h.jobs.resumes == [JobResume("job-1", None, SUBMITTED.submitted_at)]
    assert {c for c, _ in h.listener.settled[0][1]} == {"a", "b"}
    assert h.progress.stats["job_settlements_completed"] == 1


# ------------------------------------------------------------------------------------------ attributes


def test_query_snapshot_after_a_job_keeps_the_job_attributes(make: Callable[..., Harness]) -> None:
    job_version = conv("a", attrs={"ivr.Intent": "billing"}, ended=False)
    h = make([[SUBMITTED, job_page(1, [job_version], last=True)]])
    assert h.run(h.progress.begin_job_span(SPAN, T0)) is True

    # The follow-up by id returns the ended conversation without attributes (the query never has them).
    h.fetcher.by_id["a"] = conv("a", ended=True, wrapup="done")
    published = asyncio.run(h.runner.follow_open(["a"]))

    assert published == 1
    latest = orjson.loads(h.publisher.messages[-1].value)
    assert latest["participants"][0]["attributes"] == {"ivr.Intent": "billing"}
    assert "attributes" not in latest["participants"][1]  # no attributes for it in the job: none carried
    assert latest["wrapup"] == "done"
    assert h.publisher.messages[-1].headers[HEADER_ATTRIBUTES] == "carried"
    assert HEADER_ATTRIBUTES not in h.publisher.messages[0].headers


def test_query_snapshot_equal_to_the_job_version_once_attributes_are_carried_is_not_published(
    make: Callable[..., Harness],
) -> None:
    h = make([[SUBMITTED, job_page(1, [conv("a", attrs={"x": "1"})], last=True)]])
    assert h.run(h.progress.begin_job_span(SPAN, T0)) is True

    h.fetcher.by_id["a"] = conv("a")  # the same version, as the query returns it (without attributes)
    assert asyncio.run(h.runner.follow_open(["a"])) == 0
    assert len(h.publisher.messages) == 1


def test_a_later_job_without_attributes_removes_them(make: Callable[..., Harness]) -> None:
    h = make(
        [
            [SUBMITTED, job_page(1, [conv("a", attrs={"x": "1"})], last=True)],
            [SUBMITTED, job_page(1, [conv("a", changed=True)], last=True)],
        ]
    )
    assert h.run(h.progress.begin_job_span(SPAN, T0)) is True
    settle = PassKey(SPAN, SETTLING_PASS, job=True)
    h.progress.in_progress[settle] = 1
    assert h.run(settle) is True  # Genesys itself dropped the attributes

    h.fetcher.by_id["a"] = conv("a", changed=True, more=1)
    asyncio.run(h.runner.follow_open(["a"]))

    latest = orjson.loads(h.publisher.messages[-1].value)
    assert all("attributes" not in p for p in latest["participants"])
    assert HEADER_ATTRIBUTES not in h.publisher.messages[-1].headers


def test_query_page_of_a_window_gets_the_attributes_carried(make: Callable[..., Harness]) -> None:
    h = make([[SUBMITTED, job_page(1, [conv("a", attrs={"x": "1"})], last=True)]])
    assert h.run(h.progress.begin_job_span(SPAN, T0)) is True
    window = Window(T0 + timedelta(hours=10), T0 + timedelta(hours=10, minutes=5))
    h.fetcher.pages = {
        1: [Page(window, 1, 1, [conv("a", late=True)], LATER, None, window)],
    }
    key = PassKey(window, 1)
    h.progress.in_progress[key] = 1

    assert asyncio.run(h.runner.run(key, start_page=1, should_stop=lambda: False)) is True

    latest = orjson.loads(h.publisher.messages[-1].value)
    assert latest["participants"][0]["attributes"] == {"x": "1"}
    assert latest["late"] is True
    assert h.publisher.messages[-1].headers[HEADER_PASS] == "1"
    assert h.publisher.messages[-1].content_hash == content_hash(latest)
    assert sample(h.metrics, "conversations_delivered_total", path="query") == 1


def _start() -> datetime:
    return datetime(2026, 5, 1, 10, 1, tzinfo=UTC)


def _failure(key: str) -> DeliveryFailure:
    return DeliveryFailure(key=key, code="_MSG_TIMED_OUT", error="timed out")


def test_follow_up_while_the_job_snapshot_awaits_its_ack_carries_its_attributes(
    make: Callable[..., Harness],
) -> None:
    """The e2e race: a job page is produced, not yet acked, when the follow-up of the same conversation
    returns it without attributes; the follow-up must neither drop them nor publish a second version."""
    h = make([[SUBMITTED, job_page(1, [conv("a", attrs={"x": "1"}, ended=False)], last=True)]])
    h.fetcher.by_id["a"] = conv("a", ended=False)
    gate = asyncio.Event()
    h.publisher.gates[1] = gate

    async def scenario() -> int:
        job = asyncio.create_task(
            h.runner.run(h.progress.begin_job_span(SPAN, T0), start_page=1, should_stop=lambda: False)
        )
        while not h.publisher.batches:
            await asyncio.sleep(0)
        published = await h.runner.follow_open(["a"])
        gate.set()
        assert await job is True
        return published

    assert asyncio.run(scenario()) == 0
    assert len(h.publisher.messages) == 1


# ------------------------------------------------------------------------------------------ ledger


def test_backfill_job_sightings_are_first_reads_and_a_settling_job_finds_late(
    make: Callable[..., Harness], tmp_path: Path
) -> None:
    """A backfill span has no first pass: its job is the first read, so nothing it returns is a late find
    (one WARNING per conversation and an inflated found-late metric otherwise); what only a settling job
    returns still is one."""
    b = conv("b")
    h = make([[SUBMITTED, job_page(1, [conv("a")], last=True)], [job_page(1, [conv("a"), b], last=True)]])
    ledger = Ledger(tmp_path, metrics=h.metrics)
    settlements = Settlements(ledger, h.progress, clock=FakeClock(LATER), range_start=T0, range_end=None)
    h.runner._completeness = Completeness(ledger, settlements, h.progress, clock=FakeClock(LATER))

    assert h.run(h.progress.begin_job_span(SPAN, T0)) is True
    settle = PassKey(SPAN, SETTLING_PASS, job=True)
    h.progress.in_progress[settle] = 1
    assert h.run(settle) is True

    assert ledger.hour_counts(T0 + timedelta(hours=10)).by_source == {"first_pass": 1, "job": 1}
    assert sample(h.metrics, "conversations_found_late_total", source="job") == 1
    ledger.close()
