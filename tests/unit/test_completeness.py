"""Completeness in the worker: the ledger fed by passes, hours settled by their last reads, control events.

A real PassRunner, Progress, ChangeStore and Ledger (SQLite on tmp_path); the fetcher and the publishers
are the in-process fakes of tests/unit/fakes.py.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeFetcher, FakePublisher, sample

from connector.clock import FakeClock
from connector.completeness import Completeness, ControlReporter, JobSettlements, Settlements, source_of
from connector.errors import BatchNotDelivered
from connector.genesys.fetcher import Page
from connector.kafka.control import RangeFinal, Watermark, parse_control
from connector.kafka.publisher import BatchResult, DeliveryFailure
from connector.metrics import ConnectorMetrics
from connector.passes import InFlightSnapshots, PassRunner
from connector.state.changes import ChangeStore
from connector.state.ledger import Ledger
from connector.state.progress import PassKey, Progress
from connector.windows import Window

H10 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
FIRST_HALF = Window(H10, H10 + timedelta(minutes=30))
SECOND_HALF = Window(H10 + timedelta(minutes=30), H10 + timedelta(hours=1))
DELAYS = [timedelta(minutes=15)]


def conv(cid: str, minute: int) -> dict[str, Any]:
    start = H10 + timedelta(minutes=minute)
    return {
        "conversationId": cid,
        "conversationStart": start.isoformat().replace("+00:00", "Z"),
        "conversationEnd": (start + timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
    }


def page(window: Window, pass_no: int, records: list[dict[str, Any]], at: datetime) -> Page:
    return Page(
        window=window,
        pass_no=pass_no,
        page_number=1,
        conversations=records,
        received_at=at,
        total_hits=None,
        query_window=window,
    )


class World:
    """One worker's completeness parts over a fake clock; `run(window, pass_no, records)` runs one pass."""

    def __init__(self, directory: Path, *, range_start: datetime | None = H10) -> None:
        self.clock = FakeClock(H10 + timedelta(hours=3))
        self.metrics = ConnectorMetrics()
        self.progress = Progress(None, rescan_delays=DELAYS, version="test", fingerprint="fp")
        self.ledger = Ledger(directory, metrics=self.metrics)
        self.settlements = Settlements(
            self.ledger, self.progress, clock=self.clock, range_start=range_start, range_end=None
        )
        self.publisher = FakePublisher()
        self.fetcher = FakeFetcher({})
        self.runner = PassRunner(
            fetcher=self.fetcher,
            publisher=self.publisher,
            changes=ChangeStore(directory),
            progress=self.progress,
            metrics=self.metrics,
            in_flight=InFlightSnapshots(),
            clock=self.clock,
            completeness=Completeness(self.ledger, self.settlements, self.progress, clock=self.clock),
        )

    def run(self, window: Window, pass_no: int, records: list[dict[str, Any]]) -> bool:
        """Hand the pass out as the loop would (first pass at `H10 + 3h`: recent, its re-scan to come)."""
        if pass_no == 0:
            key = self.progress.begin_first_pass(window, self.clock.now() - timedelta(hours=2, minutes=55))
        else:
            # taken when due, so that the other half's re-scan (due later) is not merged into it
            (key,) = self.progress.take_due_rescans(window.end + DELAYS[0], max_length=timedelta(days=1))
        self.fetcher.pages = {pass_no: [page(window, pass_no, records, self.clock.now())]}
        return asyncio.run(self.runner.run(key, start_page=1, should_stop=lambda: False))


def test_pass_labels_name_their_ledger_source() -> None:
    assert [source_of(label) for label in ("0", "1", "3", "open", "job")] == [
        "first_pass",
        "rescan",
        "rescan",
        "follow_up",
        "job",
    ]


def test_a_page_is_acked_in_the_ledger_only_after_kafka_acknowledged_it(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.publisher.results.append(
        BatchResult(acked=1, failures=[DeliveryFailure("b", "_TRANSPORT", "broker down")])
    )
    with pytest.raises(BatchNotDelivered):
        world.run(FIRST_HALF, 0, [conv("a", 1), conv("b", 2)])
    counts = world.ledger.hour_counts(H10)
    assert counts.by_source == {"first_pass": 2}
    assert counts.acked == 0  # a batch not wholly acked records nothing

    world.progress.in_progress.clear()
    assert world.run(FIRST_HALF, 0, [conv("a", 1), conv("b", 2)])
    assert world.ledger.hour_counts(H10).acked == 2


def test_a_conversation_only_a_rescan_finds_is_a_late_find_of_its_hour(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.run(FIRST_HALF, 0, [conv("a", 1)])
    world.run(FIRST_HALF, 1, [conv("a", 1), conv("late", 5)])
    counts = world.ledger.hour_counts(H10)
    assert counts.by_source == {"first_pass": 1, "rescan": 1}
    assert counts.acked == 2
    assert sample(world.metrics, "conversations_found_late_total", source="rescan") == 1
    assert [f.conversation_id for f in world.ledger.found_late(H10, H10 + timedelta(hours=1))] == ["late"]


def test_an_hour_settles_once_every_window_of_it_had_its_last_read(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.run(FIRST_HALF, 0, [conv("a", 1)])
    world.run(SECOND_HALF, 0, [conv("b", 40)])
    world.run(FIRST_HALF, 1, [conv("a", 1), conv("late", 5)])
    assert world.ledger.settlement(H10) is None  # the second half has not been read for the last time

    world.run(SECOND_HALF, 1, [conv("b", 40)])
    settled = world.ledger.settlement(H10)
    assert settled is not None
    assert (settled.settled_by, settled.expected, settled.delivered) == ("rescan", 3, 3)
    assert sample(world.metrics, "ranges_settled_total", how="rescan") == 1
    assert sample(world.metrics, "ranges_mismatch_total") == 0


def test_a_settling_read_with_a_conversation_kafka_never_acked_is_a_mismatch(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.run(FIRST_HALF, 0, [conv("a", 1)])
    world.run(SECOND_HALF, 0, [])
    world.run(FIRST_HALF, 1, [conv("a", 1)])
    world.ledger.record_settling([("never-acked", H10 + timedelta(minutes=50))])
    world.run(SECOND_HALF, 1, [])
    settled = world.ledger.settlement(H10)
    assert settled is not None
    assert (settled.expected, settled.delivered) == (2, 1)
    assert world.ledger.missing_ids(H10) == ["never-acked"]
    assert sample(world.metrics, "ranges_mismatch_total") == 1
    assert sample(world.metrics, "ranges_missing_conversations") == 1


def test_the_jobs_path_settles_through_the_same_adapter(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.run(FIRST_HALF, 0, [conv("a", 1)])
    world.run(SECOND_HALF, 0, [conv("b", 40)])
    world.progress.rescans.clear()  # the settling job replaces the re-scans
    hours = world.settlements.settled(
        Window(H10, H10 + timedelta(days=1)),
        {"a": H10 + timedelta(minutes=1), "b": H10 + timedelta(minutes=40), "c": H10 + timedelta(minutes=50)},
        "job",
        H10 + timedelta(days=2),
    )
    assert hours == [H10]  # only the hours whose every window is done (the watermark is at 11:00)
    settled = world.ledger.settlement(H10)
    assert settled is not None
    assert (settled.settled_by, settled.expected, settled.delivered) == ("job", 3, 2)
    assert settled.data_availability_date == "2026-05-03T10:00:00.000Z"


def test_a_settling_job_reaches_the_ledger_through_the_job_settlement_listener(tmp_path: Path) -> None:
    """What the worker wires when jobs settle: the runner's `on_settled` (the job's whole result set as
    (id, start) pairs) settles the hours through the same `Settlements`, `how="job"`."""
    world = World(tmp_path)
    world.run(FIRST_HALF, 0, [conv("a", 1)])
    world.run(SECOND_HALF, 0, [conv("b", 40)])
    world.progress.rescans.clear()  # the settling job replaces the re-scans
    listener = JobSettlements(world.settlements)
    job_result = frozenset(
        {("a", H10 + timedelta(minutes=1)), ("b", H10 + timedelta(minutes=40)), ("c", None)}
    )
    listener.on_settled(Window(H10, H10 + timedelta(days=1)), job_result, H10 + timedelta(days=2))
    settled = world.ledger.settlement(H10)
    assert settled is not None
    assert (settled.settled_by, settled.expected, settled.delivered) == ("job", 2, 2)  # no start: not counted


def test_range_final_events_are_marked_reported_only_once_acked(tmp_path: Path) -> None:
    world = World(tmp_path, range_start=H10 + timedelta(minutes=15))
    world.run(FIRST_HALF, 0, [conv("a", 16)])
    world.run(SECOND_HALF, 0, [])
    world.run(FIRST_HALF, 1, [conv("a", 16), conv("late", 20)])
    world.run(SECOND_HALF, 1, [])
    control = FakePublisher()
    reporter = ControlReporter(
        world.ledger,
        world.settlements,
        control,
        clock=world.clock,
        topic="data",
        version="9.9",
        heartbeat_interval=timedelta(minutes=1),
        watermark=lambda: world.progress.watermark,
    )
    start = "2026-05-01T10:15:00.000Z"
    control.results.append(BatchResult(acked=0, failures=[DeliveryFailure(start, "_TRANSPORT", "down")]))
    assert asyncio.run(reporter.report()) == 0
    assert [s.hour for s in world.ledger.unreported_settlements()] == [H10]

    assert asyncio.run(reporter.report()) == 1
    assert list(world.ledger.unreported_settlements()) == []
    events = [parse_control(m.value) for m in control.messages]
    finals = [e for e in events if isinstance(e, RangeFinal)]
    assert len(finals) == 2  # the failed send, then the acked one
    final = finals[-1]
    assert (final.start, final.end) == (H10 + timedelta(minutes=15), H10 + timedelta(hours=1))
    assert (final.expected, final.delivered, final.settled_by) == (2, 2, "rescan")
    assert dict(final.found_late) == {"rescan": 1}
    beats = [e for e in events if isinstance(e, Watermark)]
    assert beats
    assert beats[0].settled_through == H10 + timedelta(hours=1)
    assert beats[0].watermark == H10 + timedelta(hours=1)


def test_only_the_last_pass_of_a_window_is_its_settling_read() -> None:
    progress = Progress(None, rescan_delays=DELAYS, version="t", fingerprint="f")
    recent = progress.begin_first_pass(FIRST_HALF, FIRST_HALF.end + timedelta(minutes=1))
    assert not progress.is_last_pass(recent)
    assert progress.is_last_pass(PassKey(FIRST_HALF, 1))
    backlog = progress.begin_first_pass(SECOND_HALF, SECOND_HALF.end + timedelta(hours=1))
    assert progress.is_last_pass(backlog)  # started after its only re-scan was due: nothing follows
    none = Progress(None, rescan_delays=[], version="t", fingerprint="f")
    assert not none.is_last_pass(none.begin_first_pass(FIRST_HALF, FIRST_HALF.end))
