"""`verify`: comparison per day/hour, table and JSON, the reference seam, usage errors, exit codes."""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from fakes import offline_config

from connector.cli import main
from connector.config import load_config
from connector.errors import ExitCode
from connector.state.ledger import FIRST_PASS, RESCAN, Ledger
from connector.verify import (
    TerminalProgress,
    VerifyRequest,
    VerifyUsageError,
    parse_when,
    run_verify,
    verify_settings,
)
from connector.verify_reference import ReferenceSet, collect_reference, plan_reference
from connector.verify_report import compare, periods, render_json, render_table
from connector.windows import Window

pytestmark = pytest.mark.usefixtures("no_connector_env")

D1 = datetime(2026, 5, 1, tzinfo=UTC)
D2 = D1 + timedelta(days=1)
D3 = D2 + timedelta(days=1)


def at(day: datetime, hours: float) -> datetime:
    return day + timedelta(hours=hours)


def reference(**starts: datetime) -> ReferenceSet:
    return ReferenceSet(
        starts=dict(starts), provisional=[Window(D1, D3)], sources=[(Window(D1, D3), "query")]
    )


def test_missing_and_extra_per_day() -> None:
    ref = reference(a=at(D1, 1), b=at(D1, 2), c=at(D2, 5), d=at(D2, 23.5))
    kafka = {"a": at(D1, 1), "c": at(D2, 5), "x": at(D2, 6), "y": None, "old": at(D1, -3), "d": None}
    report = compare(ref, kafka, D1, D3, hourly=False, kafka_source="topic")
    assert [(r.period.start, r.in_genesys, r.in_kafka, r.missing, r.extra) for r in report.rows] == [
        (D1, 2, 1, 1, 0),
        (D2, 2, 3, 0, 1),  # d dated by the reference (its value had no start); x is extra; y undatable
    ]
    assert report.missing_ids == ["b"]
    assert report.extra_ids == ["x"]
    assert report.exit_code == ExitCode.MISSING
    assert all(r.provisional for r in report.rows)


def test_nothing_missing_exits_0_even_with_extras() -> None:
    ref = reference(a=at(D1, 1))
    report = compare(ref, {"a": at(D1, 1), "z": at(D1, 2)}, D1, D2, hourly=True, kafka_source="topic")
    assert report.exit_code == ExitCode.OK
    assert len(report.rows) == 24
    assert report.rows[2].extra == 1


def test_periods_clip_to_the_range() -> None:
    rows = periods(at(D1, 22.5), at(D2, 1), hourly=True)
    assert [(w.start, w.end) for w in rows] == [
        (at(D1, 22.5), at(D1, 23)),
        (at(D1, 23), D2),
        (D2, at(D2, 1)),
    ]
    assert [w.start for w in periods(at(D1, 5), at(D2, 1), hourly=False)] == [at(D1, 5), D2]


def test_table_and_json() -> None:
    ref = reference(a=at(D1, 1), b=at(D1, 2))
    report = compare(
        ref,
        {"a": at(D1, 1)},
        D1,
        D2,
        hourly=False,
        kafka_source="topic",
        ledger_acked={"a": at(D1, 1), "b": at(D1, 2)},
        late={"b": at(D1, 2)},
    )
    table = render_table(report, hourly=False)
    lines = table.splitlines()
    assert lines[0].split() == [
        "day", "(UTC)", "in", "Genesys", "in", "Kafka", "(topic)", "missing", "extra", "provisional",
        "in", "ledger", "found", "late",
    ]  # fmt: skip
    assert lines[2].split() == ["2026-05-01", "2", "1", "1", "0", "yes", "2", "1"]
    assert "MISSING: 1 conversation(s)" in table
    assert "(provisional: read with the details query" in table
    data = orjson.loads(render_json(report))
    assert data["missing"] == 1
    assert data["missing_ids"] == ["b"]
    assert data["provisional"] is True
    assert data["periods"][0] == {
        "start": "2026-05-01T00:00:00.000Z",
        "end": "2026-05-02T00:00:00.000Z",
        "in_genesys": 2,
        "in_kafka": 1,
        "missing": 1,
        "extra": 0,
        "provisional": True,
        "in_ledger": 2,
        "found_late": 1,
    }


def test_plan_reference_splits_at_data_availability() -> None:
    assert plan_reference(D1, D3, None) == [(Window(D1, D3), "tail")]
    assert plan_reference(D1, D3, D1) == [(Window(D1, D3), "tail")]
    assert plan_reference(D1, D3, D2) == [(Window(D1, D2), "settled"), (Window(D2, D3), "tail")]
    assert plan_reference(D1, D2, D3) == [(Window(D1, D2), "settled")]


class FakeReference:
    def __init__(self, name: str, provisional: bool, found: dict[str, datetime]) -> None:
        self.name = name
        self.provisional = provisional
        self.found = found
        self.asked: list[Window] = []

    async def conversations(self, window: Window) -> dict[str, datetime]:
        self.asked.append(window)
        return {k: v for k, v in self.found.items() if window.start <= v < window.end}


def test_the_settled_seam_answers_the_data_lake_part_and_only_the_tail_is_provisional() -> None:
    jobs = FakeReference("job", False, {"a": at(D1, 1)})
    query = FakeReference("query", True, {"b": at(D2, 1)})
    result = asyncio.run(collect_reference(D1, D3, tail=query, settled=jobs, data_availability=D2))
    assert result.starts == {"a": at(D1, 1), "b": at(D2, 1)}
    assert jobs.asked == [Window(D1, D2)]
    assert query.asked == [Window(D2, D3)]
    assert result.provisional == [Window(D2, D3)]
    report = compare(result, {"a": at(D1, 1), "b": at(D2, 1)}, D1, D3, hourly=False, kafka_source="topic")
    assert [r.provisional for r in report.rows] == [False, True]
    # without a settled reference everything is the (provisional) tail
    alone = asyncio.run(collect_reference(D1, D3, tail=query, data_availability=D2))
    assert alone.provisional == [Window(D1, D3)]


def test_parse_when() -> None:
    now = at(D2, 12)
    assert parse_when("2026-05-01", now=now, name="--from") == D1
    assert parse_when("2026-05-01T10:00:00Z", now=now, name="--from") == at(D1, 10)
    assert parse_when("-1d", now=now, name="--from") == at(D1, 12)
    with pytest.raises(VerifyUsageError, match="--to: the instant needs a timezone"):
        parse_when("2026-05-01T10:00:00", now=now, name="--to")
    with pytest.raises(VerifyUsageError, match="--from: expected"):
        parse_when("yesterday", now=now, name="--from")
    with pytest.raises(VerifyUsageError, match="--from must be before --to"):
        VerifyRequest(start=D2, end=D1)


def _config(tmp_path: Path, port: int) -> Path:
    path = offline_config(tmp_path, port, genesys="  requests_per_minute: 600\n  verify_budget_share: 0.05\n")
    (tmp_path / "state").mkdir(exist_ok=True)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-05-02", "--to", "2026-05-01"], "--from must be before --to"),
        (["--from", "soon", "--to", "2026-05-01"], "--from: expected an ISO-8601 instant"),
        (["--from", "2026-05-01", "--to", "2026-05-02"], "no completeness ledger"),
    ],
)
def test_bad_usage_exits_2_with_one_line_and_connects_nowhere(
    tmp_path: Path,
    listener: socket.socket,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    config = _config(tmp_path, listener.getsockname()[1])
    assert main(["verify", "--config", str(config), *args]) == ExitCode.CONFIG == ExitCode.CONFIG
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1
    with pytest.raises(BlockingIOError):
        listener.accept()


def test_verify_settings_take_the_verify_share(tmp_path: Path) -> None:
    settings = load_config(_config(tmp_path, 9), environ={})
    slim = verify_settings(settings)
    assert slim.genesys.budget_share == slim.genesys.live_budget_share == 0.05
    assert slim.genesys.max_concurrency == 2
    assert settings.genesys.budget_share == 1.0  # the worker's own is untouched


def test_ledger_is_the_kafka_side_without_read_topic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --read-topic the ledger's acknowledged conversations are what Kafka holds."""
    settings = load_config(_config(tmp_path, 9), environ={})
    with Ledger(tmp_path / "state") as ledger:
        ledger.record_seen("a", at(D1, 1), FIRST_PASS, at=D3)
        ledger.record_seen("b", at(D1, 2), RESCAN, at=D3)
        ledger.record_acked([("a", at(D1, 1))], at=D3)

    async def fake_verify_reference(*_args: object, **_kwargs: object) -> ReferenceSet:
        return reference(a=at(D1, 1), b=at(D1, 2))

    monkeypatch.setattr("connector.verify.collect_reference", fake_verify_reference)
    out, err = io.StringIO(), io.StringIO()
    code = asyncio.run(run_verify(settings, VerifyRequest(D1, D2, as_json=True), out=out, err=err))
    assert code == ExitCode.MISSING
    data = orjson.loads(out.getvalue())
    assert data["kafka_source"] == "ledger"
    assert data["missing_ids"] == ["b"]
    assert data["periods"][0]["found_late"] == 1
    assert err.getvalue() == ""  # not a terminal: no progress output


def test_progress_only_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    pipe, tty = io.StringIO(), Tty()
    for stream in (pipe, tty):
        progress = TerminalProgress(stream)
        progress("Genesys read 1/2")
        progress.done()
    assert pipe.getvalue() == ""
    assert "verify: Genesys read 1/2" in tty.getvalue()


class _FakeJobs:
    """Stands in for JobRunner.run: one page per span of the records given, noting the spans and bodies."""

    def __init__(self, records: list[dict[str, str]]) -> None:
        self.records = records
        self.spans: list[tuple[Window, dict[str, object]]] = []

    async def run(self, span: Window, body: dict[str, object]) -> AsyncIterator[object]:
        from connector.genesys.jobs import JobPage, JobSubmitted

        self.spans.append((span, body))
        yield JobSubmitted(span, "job-1", span.start, 1)
        yield JobPage(span, "job-1", 1, list(self.records), None, None, span.start, None)


def test_the_job_reference_reads_whole_utc_days_and_keeps_the_window() -> None:
    from connector.config import FilterSettings
    from connector.verify_reference import JobReference

    day = datetime(2026, 5, 1, tzinfo=UTC)
    records = [
        {"conversationId": "before", "conversationStart": "2026-05-01T21:59:59.999Z"},
        {"conversationId": "in", "conversationStart": "2026-05-01T23:30:00.000Z"},
        {"conversationId": "after-midnight", "conversationStart": "2026-05-02T00:10:00.000Z"},
    ]
    jobs = _FakeJobs(records)
    reference = JobReference(jobs, FilterSettings(), progress=lambda _text: None)  # type: ignore[arg-type]
    window = Window(day + timedelta(hours=22), day + timedelta(days=1, hours=1))

    found = asyncio.run(reference.conversations(window))

    assert sorted(found) == ["after-midnight", "in"]
    assert [span for span, _ in jobs.spans] == [
        Window(day, day + timedelta(days=1)),
        Window(day + timedelta(days=1), day + timedelta(days=2)),
    ]
    assert all(body["startOfDayIntervalMatching"] is True for _, body in jobs.spans)
    assert reference.provisional is False
    assert (reference.jobs, reference.pages) == (2, 2)
