"""JobScheduler (what the loop hands to jobs) with Progress (job passes, windows awaiting settlement)."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import pytest

from connector.clock import FakeClock
from connector.config import JobsSettings
from connector.errors import RetriableError
from connector.jobs_schedule import JobScheduler
from connector.state.progress import SETTLING_PASS, PassKey, Progress
from connector.windows import Window

DAY = timedelta(days=1)
T0 = datetime(2026, 5, 1, tzinfo=UTC)
NOW = T0 + 5 * DAY


class Source:
    def __init__(self, *answers: datetime | Exception) -> None:
        self.answers = list(answers)

    async def read_availability(self) -> datetime:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def scheduler(*answers: datetime | Exception, **settings: object) -> JobScheduler:
    clock = FakeClock(NOW)
    return JobScheduler(JobsSettings.model_validate(settings), Source(*answers), clock)


def progress() -> Progress:
    return Progress(None, rescan_delays=[], version="t", fingerprint="f", settle=True)


def test_backfill_spans_cover_start_to_availability_in_day_spans_then_the_query_takes_over() -> None:
    jobs = scheduler(NOW - timedelta(hours=2), max_concurrent=2)
    asyncio.run(jobs.refresh())
    p = progress()
    start = T0 + timedelta(hours=6)

    handed: list[Window] = []
    while jobs.backfill_pending(p.planned_until or start):
        for span in jobs.backfill_spans(p.planned_until or start, 2):
            handed.append(p.begin_job_span(span, NOW).window)

    assert handed[0] == Window(start, T0 + DAY)
    assert handed[-1].end == NOW - timedelta(hours=2)  # the handover: the query reads from here
    assert all(a.end == b.start for a, b in itertools.pairwise(handed))
    assert p.watermark == start  # nothing acked yet: the watermark waits for the first span
    p.complete(PassKey(handed[0], 0, job=True))
    assert p.watermark == handed[1].start


def test_no_backfill_when_turned_off_or_availability_unknown() -> None:
    assert scheduler(NOW, backfill=False).backfill_spans(T0, 2) == []
    assert scheduler(NOW).backfill_spans(T0, 2) == []  # never read yet


def test_a_failed_availability_read_keeps_the_last_value_and_checks_again_later() -> None:
    jobs = scheduler(NOW - DAY, RetriableError("503"), availability_check_interval="5m")
    asyncio.run(jobs.refresh())
    assert not jobs.check_due()
    assert jobs.next_check_in_s() == pytest.approx(300)
    assert asyncio.run(jobs.refresh()) == NOW - DAY


def test_query_windows_wait_for_their_settling_job_until_the_lake_passed_them_plus_the_delay() -> None:
    p = progress()
    w1, w2 = (
        Window(T0, T0 + timedelta(minutes=5)),
        Window(T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)),
    )
    for w in (w1, w2):
        p.complete(p.begin_first_pass(w, NOW))
    assert p.unsettled == [w1, w2]
    jobs = scheduler(w1.end + timedelta(hours=24), w2.end + timedelta(hours=24), settle_delay="24h")

    asyncio.run(jobs.refresh())
    assert p.take_settlements(jobs.settlements(p.unsettled, 2), NOW) == [
        PassKey(w1, SETTLING_PASS, job=True)
    ]  # w1 is due (its end + 24h passed), w2 not yet
    asyncio.run(jobs.refresh())
    keys = p.take_settlements(jobs.settlements(p.unsettled, 2), NOW)
    assert keys == [PassKey(w2, SETTLING_PASS, job=True)]
    assert p.unsettled == []
    assert [(u.window_start, u.pass_no, u.job) for u in p.snapshot().in_progress] == [
        (w1.start, SETTLING_PASS, True),
        (w2.start, SETTLING_PASS, True),
    ]


def test_settlement_off_keeps_no_windows() -> None:
    p = Progress(None, rescan_delays=[], version="t", fingerprint="f", settle=False)
    p.complete(p.begin_first_pass(Window(T0, T0 + timedelta(minutes=5)), NOW))
    assert p.unsettled == []
