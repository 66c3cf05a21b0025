"""The completeness ledger's vocabulary: sources, hours of conversation start and the rows it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

HOUR = timedelta(hours=1)
FIRST_PASS = "first_pass"  # noqa: S105 - a source label
RESCAN = "rescan"
FOLLOW_UP = "follow_up"
JOB = "job"
SOURCES = (FIRST_PASS, RESCAN, FOLLOW_UP, JOB)
LATE_SOURCES = (RESCAN, FOLLOW_UP, JOB)


def hour_of(moment: datetime) -> datetime:
    """The UTC hour `moment` falls in (its start)."""
    utc = moment.astimezone(UTC)
    return utc.replace(minute=0, second=0, microsecond=0)


def hour_key(hour: datetime) -> int:
    return int(hour_of(hour).timestamp())


def key_hour(key: int) -> datetime:
    return datetime.fromtimestamp(key, UTC)


@dataclass(frozen=True)
class Sighting:
    """One conversation seen by one source (a window pass, the follow-up, the settling job)."""

    conversation_id: str
    start: datetime
    source: str
    window: str | None = None  # the window's interval, for per-pass counts
    pass_label: str | None = None  # "0", "1".., "open", "job"


@dataclass(frozen=True)
class HourCounts:
    """Distinct conversations of one hour of conversation start, by the source that found them first."""

    hour: datetime
    by_source: dict[str, int] = field(default_factory=dict)
    acked: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_source.values())

    @property
    def first_pass(self) -> int:
        return self.by_source.get(FIRST_PASS, 0)

    @property
    def found_late(self) -> int:
        return sum(self.by_source.get(s, 0) for s in LATE_SOURCES)

    @property
    def unacked(self) -> int:
        return self.total - self.acked


@dataclass(frozen=True)
class LateFind:
    conversation_id: str
    hour: datetime
    source: str
    seen_at: datetime


@dataclass(frozen=True)
class HourSettlement:
    """How an hour was declared final, for its range-final event."""

    hour: datetime
    settled_by: str
    settled_at: datetime
    expected: int
    delivered: int
    data_availability_date: str | None
    reported_at: datetime | None
