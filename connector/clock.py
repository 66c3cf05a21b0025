"""Time, injected.

Everything that reads the time (window planning, token expiry, pacing, re-scan schedules) takes a `Clock`
so tests can drive it without sleeping. Datetimes are always timezone-aware UTC.
"""

from __future__ import annotations

import asyncio
import functools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


@functools.lru_cache(maxsize=1024)
def format_instant(moment: datetime) -> str:
    """`2026-05-01T10:00:00.000Z`: ISO-8601 UTC with milliseconds and `Z`.

    The one text form of an instant: Genesys intervals, the Kafka headers, the checkpoint and the config
    all use it. A naive datetime is refused (ValueError) rather than read in the machine's local zone.
    Cached: every message of a page (1,000 from a job) has the same window and observed-at headers, and
    equal instants have equal text whatever their zone (a datetime's hash is that of the instant).
    """
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: instants must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Clock(Protocol):
    """Source of wall-clock time, monotonic time and sleeping."""

    def now(self) -> datetime:
        """Current wall-clock time, tz-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` (may return early only if cancelled)."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that only moves when told to (or when something sleeps on it). For unit tests."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 5, 1, tzinfo=UTC)
        self._mono = 1000.0
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)


def parse_instant(text: str) -> datetime:
    """Inverse of `format_instant`: any ISO-8601 instant with an offset or `Z`, as UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"instant without a timezone: {text!r}")
    return value.astimezone(UTC)
