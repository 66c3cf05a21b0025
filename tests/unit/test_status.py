"""`genesys-connector status`: the checkpoint as a report, text or JSON, read-only and without secrets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.clock import FakeClock
from connector.config import Settings, load_config
from connector.state.checkpoint import (
    CheckpointState,
    FileCheckpointStore,
    JobCursor,
    LastError,
    PassProgress,
    RescanEntry,
    UnsettledWindow,
)
from connector.status import render_status, status_report

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1, minutes=30)
CLIENT_SECRET = "Gen3sys-Client-S3cret-do-not-print"
SASL_PASSWORD = "Kafka-SASL-Pa55word-do-not-print"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    env = {
        "GENESYS__API_BASE_URL": "https://api.example.test",
        "GENESYS__LOGIN_BASE_URL": "https://login.example.test",
        "GENESYS__CLIENT_ID": "client-id",
        "GENESYS__CLIENT_SECRET": CLIENT_SECRET,
        "KAFKA__TOPIC": "genesys.status.test",
        "KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA__SASL_USERNAME": "connector",
        "KAFKA__SASL_PASSWORD": SASL_PASSWORD,
        "CHECKPOINT__DIRECTORY": str(tmp_path / "state"),
    }
    return load_config(None, environ={f"GENESYS_CONNECTOR__{k}": v for k, v in env.items()})


def saved_state() -> CheckpointState:
    minutes = timedelta(minutes=5)
    return CheckpointState(
        watermark=T0,
        planned_until=T0 + 2 * minutes,
        in_progress=[
            PassProgress(window_start=T0, window_end=T0 + minutes, pass_no=0, next_page=4),
            PassProgress(window_start=T0 + minutes, window_end=T0 + 2 * minutes, pass_no=0, next_page=1),
        ],
        rescans=[
            RescanEntry(
                window_start=T0 - minutes, window_end=T0, pass_no=1, due_at=T0 + timedelta(minutes=15)
            ),
            RescanEntry(
                window_start=T0 - 2 * minutes,
                window_end=T0 - minutes,
                pass_no=1,
                due_at=T0 + timedelta(minutes=10),
            ),
            RescanEntry(
                window_start=T0 - 4 * minutes, window_end=T0, pass_no=2, due_at=T0 + timedelta(hours=2)
            ),
        ],
        open_conversations={"c1": T0, "c2": T0},
        last_error=LastError(at=T0 + timedelta(minutes=20), message="upstream unavailable status=503"),
        connector_version="9.9.9",
        stats={"published": 120, "passes_completed_0": 30},
    )


def write_checkpoint(settings: Settings, state: CheckpointState, at: datetime = T0) -> None:
    with FileCheckpointStore(settings.checkpoint.directory, FakeClock(at)) as store:
        store.save(state)


def test_no_checkpoint_says_so(settings: Settings) -> None:
    report = status_report(settings, clock=FakeClock(NOW))
    assert report["state"].startswith("no checkpoint yet")
    assert report["topic"] == "genesys.status.test"
    assert report["checkpoint_directory"] == str(settings.checkpoint.directory)
    assert "watermark" not in report
    assert "no checkpoint yet" in render_status(settings, clock=FakeClock(NOW))


def test_report_shows_watermark_lag_rescans_by_pass_and_last_error(settings: Settings) -> None:
    write_checkpoint(settings, saved_state(), at=T0 + timedelta(minutes=25))

    report = status_report(settings, clock=FakeClock(NOW))

    assert report["watermark"] == "2026-05-01T10:00:00Z"
    assert report["lag_seconds"] == 5400.0
    assert report["planned_until"] == "2026-05-01T10:10:00Z"
    assert report["checkpoint_written_at"] == "2026-05-01T10:25:00Z"
    assert report["rescans_pending"] == 3
    assert report["rescans_pending_by_pass"] == {"1": 2, "2": 1}
    assert report["next_rescan_due"] == "2026-05-01T10:10:00Z"
    assert report["in_progress"] == [
        {"window": "2026-05-01T10:00:00Z/2026-05-01T10:05:00Z", "pass": 0, "next_page": 4},
        {"window": "2026-05-01T10:05:00Z/2026-05-01T10:10:00Z", "pass": 0, "next_page": 1},
    ]
    assert report["last_error"] == {
        "at": "2026-05-01T10:20:00Z",
        "message": "upstream unavailable status=503",
    }
    assert report["state"].startswith("ok (an error was recorded")
    assert report["open_conversations"] == 2
    assert report["stats"] == {"published": 120, "passes_completed_0": 30}
    assert report["connector_version"] == "9.9.9"


def test_report_shows_the_backfill_and_settlement_frontiers(settings: Settings) -> None:
    day = timedelta(days=1)
    cursor = JobCursor(job_id="j-2", cursor="opaque", submitted_at=T0)
    state = CheckpointState(
        watermark=T0 - 3 * day,
        planned_until=T0,
        in_progress=[
            PassProgress(window_start=T0 - 3 * day, window_end=T0 - 2 * day, pass_no=0, job=True),
            PassProgress(
                window_start=T0 - 2 * day, window_end=T0 - day, pass_no=0, job=True, job_cursor=cursor
            ),
            PassProgress(window_start=T0 - 5 * day, window_end=T0 - 4 * day, pass_no=1, job=True),
        ],
        unsettled=[UnsettledWindow(window_start=T0 - 4 * day, window_end=T0 - 3 * day)],
        stats={"job_spans_completed": 7, "job_settlements_completed": 3},
    )
    write_checkpoint(settings, state)

    report = status_report(settings, clock=FakeClock(NOW))

    assert report["backfill"] == {
        "job_spans_done": 7,
        "job_spans_in_flight": 2,
        "job_spans_resumable_at_a_cursor": 1,
        "frontier": "2026-04-28T10:00:00Z",
    }
    assert report["settlement"] == {
        "settled_before": "2026-04-26T10:00:00Z",
        "windows_waiting": 1,
        "settling_jobs_in_flight": 1,
        "settling_jobs_done": 3,
    }
    assert [p["pass"] for p in report["in_progress"]] == ["backfill-job", "backfill-job", "settle-job"]
    assert "opaque" not in render_status(settings, clock=FakeClock(NOW))


def test_checkpoint_without_error_or_watermark_is_ok_with_empty_fields(settings: Settings) -> None:
    write_checkpoint(settings, CheckpointState())
    report = status_report(settings, clock=FakeClock(NOW))
    assert report["state"] == "ok"
    assert report["watermark"] is None
    assert report["lag_seconds"] is None
    assert report["last_error"] is None
    assert report["rescans_pending_by_pass"] == {}
    assert report["next_rescan_due"] is None


def test_json_form_parses_to_the_report(settings: Settings) -> None:
    write_checkpoint(settings, saved_state())
    clock = FakeClock(NOW)
    text = render_status(settings, as_json=True, clock=clock)
    assert json.loads(text) == status_report(settings, clock=clock)


def test_text_form_has_one_line_per_field_and_lists_passes_in_progress(settings: Settings) -> None:
    write_checkpoint(settings, saved_state())
    text = render_status(settings, clock=FakeClock(NOW))
    lines = text.splitlines()
    assert any(line.startswith("watermark") and line.endswith("2026-05-01T10:00:00Z") for line in lines)
    assert any(line.startswith("rescans_pending_by_pass") and line.endswith("1=2, 2=1") for line in lines)
    assert any(line.startswith("in_progress") and "2 pass(es)" in line for line in lines)
    assert any("pass 0 next page 4" in line for line in lines)
    assert any(line.startswith("last_error") and "status=503" in line for line in lines)


def test_status_reads_while_a_live_worker_holds_the_lock_and_writes_nothing(settings: Settings) -> None:
    write_checkpoint(settings, saved_state())
    path = settings.checkpoint.directory / "checkpoint.json"
    before = path.read_bytes()
    with FileCheckpointStore(settings.checkpoint.directory, FakeClock(T0)):  # the running connector
        report = status_report(settings, clock=FakeClock(NOW))
    assert report["watermark"] == "2026-05-01T10:00:00Z"
    assert path.read_bytes() == before
    assert sorted(p.name for p in settings.checkpoint.directory.iterdir()) == [".lock", "checkpoint.json"]


@pytest.mark.parametrize("with_checkpoint", [False, True])
def test_no_secret_appears_in_text_or_json(settings: Settings, with_checkpoint: bool) -> None:
    if with_checkpoint:
        write_checkpoint(settings, saved_state())
    for as_json in (False, True):
        out = render_status(settings, as_json=as_json, clock=FakeClock(NOW))
        assert CLIENT_SECRET not in out
        assert SASL_PASSWORD not in out
        assert "client-id" not in out, "no configuration value except the topic and the directory"


def test_last_error_written_unredacted_by_an_older_version_is_masked_when_shown(
    settings: Settings,
) -> None:
    directory = settings.checkpoint.directory
    write_checkpoint(settings, CheckpointState())
    path = directory / "checkpoint.json"
    data = json.loads(path.read_text())
    data["last_error"] = {
        "at": "2026-05-01T10:20:00Z",
        "message": f"oauth_token: attempt 2 failed; secret {CLIENT_SECRET}; Authorization: Bearer abc.def-1",
    }
    path.write_text(json.dumps(data))
    for as_json in (False, True):
        out = render_status(settings, as_json=as_json, clock=FakeClock(NOW), secrets=[CLIENT_SECRET])
        assert CLIENT_SECRET not in out
        assert "abc.def-1" not in out
        assert "oauth_token: attempt 2 failed; secret ***; Authorization: ***" in out


def test_status_shows_the_ledger_per_recent_day(settings: Settings) -> None:
    from connector.state.ledger import Ledger

    write_checkpoint(settings, saved_state())
    assert status_report(settings, clock=FakeClock(NOW))["ledger"] == {"state": "no completeness ledger yet"}
    with Ledger(settings.checkpoint.directory) as ledger:
        ledger.record_seen("a", T0, "first_pass", at=T0)
        ledger.record_seen("b", T0, "rescan", at=T0)
        ledger.record_acked([("a", T0), ("b", T0)], at=T0)
        ledger.record_seen("c", T0 - timedelta(days=1), "follow_up", at=T0)
        ledger.mark_settled(T0, settled_by="rescan", expected=2, delivered=2, at=T0)
        ledger.record_seen("too-old", T0 - timedelta(days=5), "first_pass", at=T0)

    report = status_report(settings, clock=FakeClock(NOW))

    assert report["ledger"] == {
        "2026-04-30": {"seen": 1, "found_late": 1, "acked": 0, "hours_settled": 0},
        "2026-05-01": {"seen": 2, "found_late": 1, "acked": 2, "hours_settled": 1},
    }
    text = render_status(settings, clock=FakeClock(NOW))
    assert "2026-05-01 seen 2 found late 1 acked 2 hours settled 1" in text
