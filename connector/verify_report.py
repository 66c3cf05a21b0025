"""`verify`'s comparison and report: reference vs Kafka per day or hour, as a table or JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

from connector.clock import format_instant
from connector.errors import ExitCode
from connector.verify_reference import ReferenceSet
from connector.windows import Window

LISTED_IDS = 100  # missing/extra ids listed in the JSON output, at most


@dataclass(frozen=True)
class PeriodRow:
    """One line of the table."""

    period: Window
    in_genesys: int
    in_kafka: int
    missing: int
    extra: int
    provisional: bool
    in_ledger: int | None = None
    found_late: int | None = None


@dataclass(frozen=True)
class Report:
    """The whole comparison."""

    start: datetime
    end: datetime
    rows: list[PeriodRow]
    missing_ids: list[str]
    extra_ids: list[str]
    kafka_source: str  # "topic" | "ledger"
    reference_sources: list[tuple[Window, str]]
    notes: list[str] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return sum(r.missing for r in self.rows)

    @property
    def extra(self) -> int:
        return sum(r.extra for r in self.rows)

    @property
    def exit_code(self) -> int:
        return ExitCode.MISSING if self.missing else ExitCode.OK


def periods(start: datetime, end: datetime, *, hourly: bool) -> list[Window]:
    """The table's rows: UTC hours or days covering `[start, end)`, clipped to it."""
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    first = start.replace(minute=0, second=0, microsecond=0)
    if not hourly:
        first = first.replace(hour=0)
    out: list[Window] = []
    cursor = first
    while cursor < end:
        out.append(Window(max(cursor, start), min(cursor + step, end)))
        cursor += step
    return out


def compare(
    reference: ReferenceSet,
    kafka: Mapping[str, datetime | None],
    start: datetime,
    end: datetime,
    *,
    hourly: bool,
    kafka_source: str,
    ledger_acked: Mapping[str, datetime] | None = None,
    late: Mapping[str, datetime] | None = None,
) -> Report:
    """Compare the reference with what Kafka holds, per period of conversation start.

    `kafka` maps keys to conversationStart (None when the value does not say: such a key counts as present
    for a conversation of the reference and is otherwise ignored, as it cannot be dated). `ledger_acked`
    (id -> hour) adds the ledger's count per period when Kafka was read from the topic; `late` (id -> hour)
    the ledger's late finds.
    """
    rows_of = periods(start, end, hourly=hourly)

    def row_index(moment: datetime) -> int | None:
        for i, period in enumerate(rows_of):
            if period.start <= moment < period.end:
                return i
        return None

    genesys = [set[str]() for _ in rows_of]
    present = [set[str]() for _ in rows_of]
    for cid, when in reference.starts.items():
        i = row_index(when)
        if i is not None:
            genesys[i].add(cid)
    for cid, dated in kafka.items():
        moment = dated if dated is not None else reference.starts.get(cid)
        if moment is None:
            continue
        i = row_index(moment.astimezone(UTC))
        if i is not None:
            present[i].add(cid)
    rows: list[PeriodRow] = []
    missing_ids: list[str] = []
    extra_ids: list[str] = []
    for i, period in enumerate(rows_of):
        missing = sorted(genesys[i] - present[i])
        extra = sorted(present[i] - genesys[i])
        missing_ids += missing
        extra_ids += extra
        rows.append(
            PeriodRow(
                period=period,
                in_genesys=len(genesys[i]),
                in_kafka=len(present[i]),
                missing=len(missing),
                extra=len(extra),
                provisional=reference.is_provisional(period),
                in_ledger=None if ledger_acked is None else _count_in(ledger_acked, period),
                found_late=None if late is None else _count_in(late, period),
            )
        )
    return Report(start, end, rows, missing_ids, extra_ids, kafka_source, list(reference.sources))


def _count_in(hours: Mapping[str, datetime], period: Window) -> int:
    """Ledger entries (dated by hour) of a period; a partial hour at an edge counts whole."""
    return sum(1 for hour in hours.values() if period.start < hour + timedelta(hours=1) and hour < period.end)


# --------------------------------------------------------------------------------------------- output
def render_table(report: Report, *, hourly: bool) -> str:
    """The human table; a line per period and a total."""
    label = "hour (UTC)" if hourly else "day (UTC)"
    ledger = any(r.in_ledger is not None for r in report.rows)
    head = [label, "in Genesys", f"in Kafka ({report.kafka_source})", "missing", "extra", "provisional"]
    if ledger:
        head += ["in ledger", "found late"]
    lines = [head]
    for r in report.rows:
        name = r.period.start.strftime("%Y-%m-%d %H:00" if hourly else "%Y-%m-%d")
        line = [
            name,
            str(r.in_genesys),
            str(r.in_kafka),
            str(r.missing),
            str(r.extra),
            "yes" if r.provisional else "no",
        ]
        if ledger:
            line += [_opt(r.in_ledger), _opt(r.found_late)]
        lines.append(line)
    total = [
        "total",
        str(sum(r.in_genesys for r in report.rows)),
        str(sum(r.in_kafka for r in report.rows)),
        str(report.missing),
        str(report.extra),
        "yes" if any(r.provisional for r in report.rows) else "no",
    ]
    if ledger:
        total += [
            str(sum(r.in_ledger or 0 for r in report.rows)),
            str(sum(r.found_late or 0 for r in report.rows)),
        ]
    lines.append(total)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = [
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(line))
        for line in lines
    ]
    text.insert(1, "  ".join("-" * w for w in widths))
    text.insert(-1, "  ".join("-" * w for w in widths))
    verdict = (
        f"MISSING: {report.missing} conversation(s) Genesys has are not in Kafka"
        if report.missing
        else "OK: nothing missing"
    )
    if any(r.provisional for r in report.rows):
        verdict += " (provisional: read with the details query; late indexing may still add conversations)"
    return "\n".join([*text, "", verdict, *report.notes])


def _opt(value: int | None) -> str:
    return "-" if value is None else str(value)


def render_json(report: Report) -> str:
    """Machine-readable report (stable keys)."""
    data = {
        "from": format_instant(report.start),
        "to": format_instant(report.end),
        "kafka_source": report.kafka_source,
        "reference": [{"interval": w.interval, "source": s} for w, s in report.reference_sources],
        "missing": report.missing,
        "extra": report.extra,
        "provisional": any(r.provisional for r in report.rows),
        "periods": [
            {
                "start": format_instant(r.period.start),
                "end": format_instant(r.period.end),
                "in_genesys": r.in_genesys,
                "in_kafka": r.in_kafka,
                "missing": r.missing,
                "extra": r.extra,
                "provisional": r.provisional,
                "in_ledger": r.in_ledger,
                "found_late": r.found_late,
            }
            for r in report.rows
        ],
        "missing_ids": report.missing_ids[:LISTED_IDS],
        "extra_ids": report.extra_ids[:LISTED_IDS],
        "notes": report.notes,
    }
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()
