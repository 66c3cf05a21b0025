"""The loop with async jobs: the backlog the data lake holds goes to job spans before any query window,
the query takes over at the handover, the watermark waits for acked spans, and windows read before the
data lake passed them get their settling job once it has.

Fakes: the job source, the availability source, the fetcher and the publisher; real: Progress, the change
store, the checkpoint store, the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeFetcher, FakePublisher

from connector.app import Connector, LoopSettings
from connector.clock import FakeClock, format_instant
from connector.config import load_config
from connector.genesys.jobs import JobEvent, JobPage, JobResume, JobSubmitted
from connector.genesys.ratelimit import Pacer
from connector.health import Heartbeat
from connector.jobs_schedule import JobScheduler
from connector.kafka.records import HEADER_PASS
from connector.metrics import ConnectorMetrics
from connector.passes import InFlightSnapshots, PassRunner
from connector.state.changes import ChangeStore
from connector.state.checkpoint import FileCheckpointStore, read_only_load
from connector.state.progress import Progress
from connector.state.pruning import PruneTimer
from connector.windows import Window, WindowPlanner

START = datetime(2026, 4, 28, tzinfo=UTC)
AVAILABLE = datetime(2026, 4, 30, 1, tzinfo=UTC)  # the data lake holds everything before this
END = datetime(2026, 4, 30, 2, tzinfo=UTC)
NOW = datetime(2026, 5, 1, tzinfo=UTC)


def env(directory: Path, **extra: str) -> dict[str, str]:
    base = {
        "GENESYS__API_BASE_URL": "https://api.example.test",
        "GENESYS__LOGIN_BASE_URL": "https://login.example.test",
        "GENESYS__CLIENT_ID": "client-id",
        "GENESYS__CLIENT_SECRET": "client-secret",
        "WINDOWS__START": format_instant(START),
        "WINDOWS__END": format_instant(END),
        "WINDOWS__LENGTH": "15m",
        "WINDOWS__MAX_CATCHUP_LENGTH": "30m",
        "WINDOWS__RESCAN_DELAYS": "[]",
        "JOBS__SETTLE_DELAY": "24h",
        "CHECKPOINT__DIRECTORY": str(directory),
    }
    return {f"GENESYS_CONNECTOR__{k}": v for k, v in {**base, **extra}.items()}


def hourly(span: Window) -> list[dict[str, Any]]:
    """One ended conversation at the start of every hour of `span`."""
    out = []
    at = span.start
    while at < span.end:
        out.append(
            {
                "conversationId": f"c-{at:%d%H}",
                "conversationStart": format_instant(at),
                "conversationEnd": format_instant(at + timedelta(minutes=3)),
                "participants": [{"participantId": f"p-{at:%d%H}", "attributes": {"k": "v"}}],
            }
        )
        at += timedelta(hours=1)
    return out


class Jobs:
    """Every span is one job with one page; records every span asked for, in order."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.spans: list[Window] = []

    async def run(
        self, span: Window, body: Mapping[str, Any], *, resume: JobResume | None = None
    ) -> AsyncIterator[JobEvent]:
        self.spans.append(span)
        yield JobSubmitted(span, f"job-{len(self.spans)}", self.clock.now(), 1)
        await asyncio.sleep(0)
        yield JobPage(
            span, f"job-{len(self.spans)}", 1, hourly(span), None, None, self.clock.now(), AVAILABLE
        )


class Availability:
    async def read_availability(self) -> datetime:
        return AVAILABLE


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Any]:
    closers: list[Any] = []

    def go(**extra: str) -> tuple[Jobs, FakeFetcher, FakePublisher, Path]:
        directory = tmp_path / f"state{len(closers)}"
        settings = load_config(None, environ=env(directory, **extra))
        clock = FakeClock(NOW)
        metrics = ConnectorMetrics()
        store = FileCheckpointStore(directory, clock)
        store.lock()
        changes = ChangeStore(directory)
        closers.extend([store.close, changes.close])
        progress = Progress(None, rescan_delays=[], version="t", fingerprint="fp", settle=True)
        jobs, fetcher, publisher = Jobs(clock), FakeFetcher({}), FakePublisher()
        runner = PassRunner(
            fetcher=fetcher,
            publisher=publisher,
            changes=changes,
            progress=progress,
            metrics=metrics,
            in_flight=InFlightSnapshots(),
            clock=clock,
            jobs=jobs,
            job_body=lambda span: {"interval": span.interval},
            settle_delay=settings.jobs.settle_delay,
        )
        connector = Connector(
            clock=clock,
            metrics=metrics,
            planner=WindowPlanner(settings.windows, clock),
            progress=progress,
            runner=runner,
            publisher=publisher,
            checkpoints=store,
            pruning=PruneTimer(changes, keep=timedelta(days=4), interval_s=600.0, clock=clock),
            pacer=Pacer.from_config(settings.genesys, clock=clock, metrics=metrics),
            heartbeat=Heartbeat(clock, max_age_s=60.0),
            settings=LoopSettings(),
            max_catchup_length=settings.windows.max_catchup_length,
            jobs=JobScheduler(settings.jobs, Availability(), clock, end=settings.windows.end),
        )
        asyncio.run(asyncio.wait_for(connector.run(), 5.0))
        return jobs, fetcher, publisher, directory

    yield go
    for close in closers:
        close()


def test_backlog_goes_to_job_spans_and_the_query_takes_over_at_the_handover(run: Any) -> None:
    jobs, fetcher, publisher, directory = run()

    assert jobs.spans == [
        Window(START, START + timedelta(days=1)),
        Window(START + timedelta(days=1), START + timedelta(days=2)),
        Window(START + timedelta(days=2), AVAILABLE),
    ]
    query_windows = sorted(w for w, _pass, _page in fetcher.calls)
    assert query_windows[0].start == AVAILABLE, "the query reads nothing the jobs read"
    assert query_windows[-1].end == END
    assert {m.headers[HEADER_PASS] for m in publisher.messages} == {"job"}  # the fake query returns nothing
    assert len(publisher.messages) == 49  # one conversation an hour from START to the handover
    state = read_only_load(directory)
    assert state is not None
    assert state.watermark == END
    assert state.stats["job_spans_completed"] == 3
    # The first span ended 25 h before the availability: settled by its own job. The spans and windows
    # read before the data lake passed them + 24 h wait for their settling job.
    assert state.unsettled[0].window_start == START + timedelta(days=1)
    assert state.unsettled[-1].window_end == END


def test_backfill_off_reads_everything_by_query_and_settles_what_the_lake_passed(run: Any) -> None:
    jobs, fetcher, _publisher, _directory = run(JOBS__BACKFILL="false")

    assert min(w.start for w, _p, _pg in fetcher.calls) == START
    # only settling jobs, for query windows whose end + 24 h the data lake has passed
    assert jobs.spans
    assert max(s.end for s in jobs.spans) <= AVAILABLE - timedelta(hours=24)
    assert sum((s.duration for s in jobs.spans), timedelta(0)) == AVAILABLE - timedelta(hours=24) - START


def test_both_off_use_no_job(run: Any) -> None:
    jobs, fetcher, _publisher, _directory = run(JOBS__BACKFILL="false", JOBS__SETTLE="false")

    assert jobs.spans == []
    assert min(w.start for w, _p, _pg in fetcher.calls) == START
