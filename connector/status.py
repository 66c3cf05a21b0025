"""`genesys-connector status`: what the checkpoint says, for humans and scripts.

Reads the checkpoint without taking the directory lock and without writing anything, so it is safe to
run next to a live worker (e.g. `kubectl exec ... genesys-connector status`). Needs only
`checkpoint.directory` (`config.load_status_config`). Never prints a secret: it shows no configuration
values except the topic and the checkpoint directory, and `last_error` is masked again when shown (the
connector masks it before writing; a checkpoint written by an older version may not be).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import orjson

from connector.clock import Clock, SystemClock
from connector.errors import CheckpointError
from connector.secrets import Redactor
from connector.state.checkpoint import CheckpointState, read_only_load
from connector.state.ledger import LEDGER_FILE, Ledger

#: Days of the completeness ledger `status` shows (UTC days of conversation start, today included).
LEDGER_DAYS = 3


class _Checkpoint(Protocol):
    @property
    def directory(self) -> Path: ...


class _Kafka(Protocol):
    @property
    def topic(self) -> str: ...


class StatusConfig(Protocol):
    """What `status` reads of the configuration: `config.StatusSettings` or the full `Settings`."""

    @property
    def checkpoint(self) -> _Checkpoint: ...
    @property
    def kafka(self) -> _Kafka: ...


def status_report(
    settings: StatusConfig, *, clock: Clock | None = None, secrets: Iterable[str] = ()
) -> dict[str, Any]:
    """The status as a plain dict (the JSON form of `status --json`); `secrets` are masked wherever seen."""
    now = (clock or SystemClock()).now()
    state = read_only_load(settings.checkpoint.directory)
    report: dict[str, Any] = {
        "checkpoint_directory": str(settings.checkpoint.directory),
        "topic": settings.kafka.topic,
        "now": _iso(now),
    }
    if state is None:
        report["state"] = "no checkpoint yet (the connector has not completed any page)"
        return report
    report.update(_state_fields(state, now, Redactor(secrets).redact))
    report["ledger"] = ledger_days(settings.checkpoint.directory, now)
    return report


def ledger_days(directory: Path, now: datetime, *, days: int = LEDGER_DAYS) -> dict[str, Any]:
    """Completeness ledger totals per recent UTC day: conversations seen, found late, acked, settled hours.

    Read-only (WAL lets it read beside the running worker); a missing ledger says so, an unreadable one
    says why, neither fails `status`.
    """
    if not (directory / LEDGER_FILE).exists():
        return {"state": "no completeness ledger yet"}
    first = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days - 1)
    try:
        with Ledger.open(directory, read_only=True) as ledger:
            hours = ledger.hours(first, now + timedelta(hours=1))
            settled = [ledger.settlement(h.hour) for h in hours]
    except CheckpointError as exc:
        return {"state": f"unreadable: {exc}"}
    out: dict[str, Any] = {}
    for counts, settlement in zip(hours, settled, strict=True):
        day = out.setdefault(
            counts.hour.strftime("%Y-%m-%d"), {"seen": 0, "found_late": 0, "acked": 0, "hours_settled": 0}
        )
        day["seen"] += counts.total
        day["found_late"] += counts.found_late
        day["acked"] += counts.acked
        day["hours_settled"] += 0 if settlement is None else 1
    return out


def _state_fields(state: CheckpointState, now: datetime, redact: Callable[[str], str]) -> dict[str, Any]:
    rescans = sorted(state.rescans, key=lambda r: r.due_at)
    by_pass: dict[str, int] = {}
    for r in rescans:
        by_pass[str(r.pass_no)] = by_pass.get(str(r.pass_no), 0) + 1
    return {
        "state": "ok" if state.last_error is None else "ok (an error was recorded; see last_error)",
        "watermark": _iso(state.watermark),
        "lag_seconds": None if state.watermark is None else round((now - state.watermark).total_seconds(), 1),
        "planned_until": _iso(state.planned_until),
        "checkpoint_written_at": _iso(state.updated_at),
        "in_progress": [
            {
                "window": f"{_iso(p.window_start)}/{_iso(p.window_end)}",
                "pass": ("settle-job" if p.pass_no else "backfill-job") if p.job else p.pass_no,
                "next_page": p.next_page,
            }
            for p in state.in_progress
        ],
        "backfill": _backfill(state),
        "settlement": _settlement(state),
        "rescans_pending": len(rescans),
        "rescans_pending_by_pass": by_pass,
        "next_rescan_due": _iso(rescans[0].due_at) if rescans else None,
        "open_conversations": len(state.open_conversations),
        "last_error": None
        if state.last_error is None
        else {"at": _iso(state.last_error.at), "message": redact(state.last_error.message)},
        "stats": dict(state.stats),
        "connector_version": state.connector_version,
    }


def _backfill(state: CheckpointState) -> dict[str, Any]:
    """The jobs backfill frontier: spans read by jobs so far, those in flight (a job cursor or not)."""
    spans = [p for p in state.in_progress if p.job and p.pass_no == 0]
    return {
        "job_spans_done": state.stats.get("job_spans_completed", 0),
        "job_spans_in_flight": len(spans),
        "job_spans_resumable_at_a_cursor": sum(1 for p in spans if p.job_cursor and p.job_cursor.cursor),
        "frontier": _iso(min((p.window_start for p in spans), default=None)),
    }


def _settlement(state: CheckpointState) -> dict[str, Any]:
    """The settlement frontier: windows read before it are settled by a job (or were never read yet)."""
    settling = [p.window_start for p in state.in_progress if p.job and p.pass_no > 0]
    waiting = [u.window_start for u in state.unsettled]
    return {
        "settled_before": _iso(min(settling + waiting, default=state.watermark)),
        "windows_waiting": len(waiting),
        "settling_jobs_in_flight": len(settling),
        "settling_jobs_done": state.stats.get("job_settlements_completed", 0),
    }


def render_status(
    settings: StatusConfig, *, as_json: bool = False, clock: Clock | None = None, secrets: Iterable[str] = ()
) -> str:
    """The status as text (default) or JSON."""
    report = status_report(settings, clock=clock, secrets=secrets)
    if as_json:
        return orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
    lines = []
    for key, value in report.items():
        if key == "in_progress":
            lines.append(f"{'in_progress':<24}{len(value)} pass(es)")
            lines.extend(f"{'':<26}{p['window']} pass {p['pass']} next page {p['next_page']}" for p in value)
        elif key == "ledger" and "state" not in value:
            lines.append(f"{'ledger':<24}{len(value)} day(s) of conversation start")
            lines.extend(
                f"{'':<26}{day} seen {v['seen']} found late {v['found_late']} acked {v['acked']} "
                f"hours settled {v['hours_settled']}"
                for day, v in value.items()
            )
        elif isinstance(value, dict):
            inner = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
            lines.append(f"{key:<24}{inner}")
        else:
            lines.append(f"{key:<24}{'-' if value is None else value}")
    return "\n".join(lines)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
