"""The completeness ledger: first source per conversation, late finds counted and logged, acks, settlement,
read-only access beside a writer, and pruning that keeps it bounded."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.errors import CheckpointError
from connector.metrics import ConnectorMetrics
from connector.state.ledger import (
    FIRST_PASS,
    FOLLOW_UP,
    JOB,
    LEDGER_FILE,
    RESCAN,
    Ledger,
    Sighting,
    hour_of,
)

H9 = datetime(2026, 5, 1, 9, tzinfo=UTC)
H10 = H9 + timedelta(hours=1)
NOW = H10 + timedelta(hours=5)
W = "2026-05-01T09:00:00.000Z/2026-05-01T10:00:00.000Z"


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path, metrics=ConnectorMetrics())


def late_metric(metrics: ConnectorMetrics, source: str) -> float:
    value = metrics.registry.get_sample_value(
        "genesys_connector_conversations_found_late_total", {"source": source}
    )
    assert value is not None
    return value


def test_counts_per_hour_by_first_source(tmp_path: Path) -> None:
    metrics = ConnectorMetrics()
    with Ledger(tmp_path, metrics=metrics) as ledger:
        first = [Sighting(f"a{i}", H9 + timedelta(minutes=i), FIRST_PASS, W, "0") for i in range(5)]
        assert ledger.record_seen_many(first, at=NOW) == []
        again = [
            Sighting("a1", H9, RESCAN, W, "1"),
            Sighting("b1", H9 + timedelta(minutes=59), RESCAN, W, "1"),
        ]
        late = ledger.record_seen_many(again, at=NOW)
        assert [(f.conversation_id, f.hour, f.source) for f in late] == [("b1", H9, RESCAN)]
        assert ledger.record_seen("c1", H10 + timedelta(minutes=1), FOLLOW_UP, at=NOW)
        assert ledger.record_seen("d1", H9, JOB, at=NOW)
        assert not ledger.record_seen("d1", H9, FIRST_PASS, at=NOW)  # first source stays

        h9 = ledger.hour_counts(H9 + timedelta(minutes=30))
        assert h9.hour == H9
        assert h9.by_source == {FIRST_PASS: 5, RESCAN: 1, JOB: 1}
        assert (h9.total, h9.first_pass, h9.found_late, h9.acked) == (7, 5, 2, 0)
        assert ledger.hour_counts(H10).by_source == {FOLLOW_UP: 1}
        assert ledger.hour_counts(H10 + timedelta(hours=3)).total == 0
        assert [h.hour for h in ledger.hours(H9, H10 + timedelta(hours=1))] == [H9, H10]
        assert {f.conversation_id for f in ledger.found_late(H9, H10 + timedelta(hours=1))} == {
            "b1",
            "c1",
            "d1",
        }
        assert ledger.pass_counts(W) == {"0": {H9: (5, 5)}, "1": {H9: (2, 1)}}
    assert late_metric(metrics, RESCAN) == 1
    assert late_metric(metrics, FOLLOW_UP) == 1
    assert late_metric(metrics, JOB) == 1


def test_a_late_find_is_logged_with_its_hour(ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="connector.state.ledger")
    ledger.record_seen("x", H9 + timedelta(minutes=7), RESCAN, at=NOW)
    (entry,) = caplog.records
    assert "found late" in entry.getMessage()
    assert entry.hour == H9.isoformat()  # type: ignore[attr-defined]
    assert entry.source == RESCAN  # type: ignore[attr-defined]
    ledger.record_seen("y", H9, FIRST_PASS, at=NOW)
    assert len(caplog.records) == 1  # a first-pass sighting is no signal


def test_acks_are_counted_once_and_an_unseen_ack_is_recorded(ledger: Ledger) -> None:
    ledger.record_seen_many([Sighting(f"a{i}", H9, FIRST_PASS) for i in range(4)], at=NOW)
    assert ledger.record_acked([("a0", H9), ("a1", H9)], at=NOW) == 2
    assert ledger.record_acked([("a1", H9), ("a2", H9)], at=NOW) == 1
    assert ledger.record_acked([("z", H9)], at=NOW, source=FOLLOW_UP) == 1
    counts = ledger.hour_counts(H9)
    assert (counts.total, counts.acked, counts.unacked) == (5, 4, 1)
    assert set(ledger.conversations(H9, H10, acked_only=True)) == {"a0", "a1", "a2", "z"}
    assert set(ledger.conversations(H9, H10)) == {"a0", "a1", "a2", "a3", "z"}


def test_settlement_counts_and_missing_gauge(tmp_path: Path) -> None:
    metrics = ConnectorMetrics()
    with Ledger(tmp_path, metrics=metrics) as ledger:
        ledger.mark_settled(
            H9, settled_by="job", expected=10, delivered=10, at=NOW, data_availability_date="x"
        )
        ledger.mark_settled(H10, settled_by="rescan", expected=8, delivered=6, at=NOW)
        assert ledger.missing_in_settled() == 2
        assert [s.hour for s in ledger.unreported_settlements()] == [H9, H10]
        ledger.mark_reported(H9, at=NOW)
        assert [s.hour for s in ledger.unreported_settlements()] == [H10]
        settled = ledger.settlement(H9)
        assert settled is not None
        assert settled.reported_at == NOW
        assert settled.data_availability_date == "x"
    sample = metrics.registry.get_sample_value
    assert sample("genesys_connector_ranges_settled_total", {"how": "job"}) == 1
    assert sample("genesys_connector_ranges_settled_total", {"how": "rescan"}) == 1
    assert sample("genesys_connector_ranges_mismatch_total") == 1
    assert sample("genesys_connector_ranges_missing_conversations") == 2


def test_prune_drops_reported_hours_and_everything_past_the_horizon(ledger: Ledger) -> None:
    h8 = H9 - timedelta(hours=1)
    for hour in (h8, H9, H10):
        ledger.record_seen_many(
            [Sighting(f"{hour.hour}-{i}", hour, FIRST_PASS, W, "0") for i in range(3)], at=NOW
        )
    ledger.mark_settled(H9, settled_by="job", expected=3, delivered=3, at=NOW)
    ledger.mark_settled(H10, settled_by="job", expected=3, delivered=3, at=NOW)
    ledger.mark_reported(H9, at=NOW)  # H10 settled but not yet reported: kept
    dropped = ledger.prune(settled_before=NOW, all_before=H9)
    assert dropped == 6  # h8 (past the horizon) and H9 (settled and reported)
    assert [h.hour for h in ledger.hours(h8, NOW)] == [H10]
    assert ledger.settlement(H10) is not None
    assert ledger.settlement(H9) is None
    assert ledger.pass_counts(W) == {"0": {H10: (3, 3)}}
    assert ledger.count() == 3


def test_read_only_beside_a_writer_and_persisted(tmp_path: Path) -> None:
    writer = Ledger(tmp_path)
    writer.record_seen("a", H9, FIRST_PASS, at=NOW)
    reader = Ledger.open(tmp_path, read_only=True)
    assert reader.hour_counts(H9).total == 1
    writer.record_seen("b", H9, RESCAN, at=NOW)
    assert reader.hour_counts(H9).total == 2  # sees the writer's commits (WAL)
    with pytest.raises(CheckpointError):
        reader.record_seen("c", H9, FIRST_PASS, at=NOW)
    reader.close()
    writer.close()
    with Ledger(tmp_path) as again:
        assert again.hour_counts(H9).by_source == {FIRST_PASS: 1, RESCAN: 1}


def test_read_only_without_a_ledger_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no completeness ledger"):
        Ledger.open(tmp_path, read_only=True)
    assert not (tmp_path / LEDGER_FILE).exists()


def test_unknown_source_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="unknown ledger source"):
        ledger.record_seen("a", H9, "guess", at=NOW)


def test_hour_of() -> None:
    assert hour_of(datetime(2026, 5, 1, 9, 59, 59, 999000, tzinfo=UTC)) == H9
