"""Results: one row per measured value, the printed table and the saved JSON.

A row carries its target (from the issue) when there is one; `ok` is then computed from the measured
value, never set by hand. Rows without a target are context (rates, counts) and show `-`.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

Op = Literal[">=", "<=", "=="]


@dataclass(frozen=True)
class Target:
    """`value op threshold` must hold."""

    op: Op
    threshold: float

    def check(self, value: float) -> bool:
        if self.op == ">=":
            return value >= self.threshold
        if self.op == "<=":
            return value <= self.threshold
        return value == self.threshold

    def __str__(self) -> str:
        return f"{self.op} {_number(self.threshold)}"


@dataclass(frozen=True)
class Row:
    """One measured value of one scenario."""

    scenario: str
    metric: str
    value: float | None
    unit: str = ""
    target: Target | None = None
    note: str = ""

    @property
    def ok(self) -> bool | None:
        if self.target is None or self.value is None:
            return None
        return self.target.check(self.value)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"] = None if self.target is None else str(self.target)
        data["ok"] = self.ok
        return data


@dataclass
class Report:
    """Everything one `python -m bench` invocation measured."""

    profile: dict[str, Any]
    started_at: datetime
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    finished_at: datetime | None = None

    def add(self, rows: list[Row], details: dict[str, Any] | None = None, *, scenario: str = "") -> None:
        self.rows.extend(rows)
        if details is not None:
            self.details[scenario or (rows[0].scenario if rows else "unnamed")] = details

    @property
    def runtime_s(self) -> float:
        end = self.finished_at or datetime.now(UTC)
        return (end - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "started_at": self.started_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
            "runtime_s": round(self.runtime_s, 1),
            "host": host_info(),
            "rows": [r.to_dict() for r in self.rows],
            "failed_scenarios": self.failures,
            "details": self.details,
        }

    def save(self, directory: Path) -> Path:
        """Write `<directory>/<UTC timestamp>.json`; returns its path."""
        directory.mkdir(parents=True, exist_ok=True)
        stamp = self.started_at.strftime("%Y%m%dT%H%M%SZ")
        path = directory / f"{stamp}-{self.profile.get('name', 'run')}.json"
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
        return path


def host_info() -> dict[str, Any]:
    """What the numbers depend on besides the code."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _number(value: float) -> str:
    if value == int(value) and abs(value) >= 10:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if value else "0"


def format_value(row: Row) -> str:
    if row.value is None:
        return "n/a"
    text = _number(row.value)
    return f"{text} {row.unit}".strip()


def print_table(report: Report, out: TextIO) -> None:
    """The one table: scenario, metric, measured, target, pass/fail (and notes below it)."""
    header = ("scenario", "metric", "measured", "target", "result")
    body = [
        (
            r.scenario,
            r.metric,
            format_value(r),
            "-" if r.target is None else str(r.target),
            "-" if r.ok is None else ("PASS" if r.ok else "FAIL"),
        )
        for r in report.rows
    ]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    line = "+".join("-" * (w + 2) for w in widths)
    out.write(line + "\n")
    out.write("|".join(f" {h:<{w}} " for h, w in zip(header, widths, strict=True)) + "\n")
    out.write(line + "\n")
    previous = None
    for row, cells in zip(report.rows, body, strict=True):
        if previous is not None and row.scenario != previous:
            out.write(line + "\n")
        previous = row.scenario
        out.write("|".join(f" {c:<{w}} " for c, w in zip(cells, widths, strict=True)) + "\n")
    out.write(line + "\n")
    notes = [(r.scenario, r.metric, r.note) for r in report.rows if r.note]
    for scenario, metric, note in notes:
        out.write(f"  * {scenario} / {metric}: {note}\n")
    for scenario, error in report.failures.items():
        out.write(f"  ! scenario {scenario} failed: {error}\n")
    out.flush()
