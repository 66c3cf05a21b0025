"""ISO-8601 instants and intervals as epoch milliseconds, the simulator's internal time unit.

Records are rendered hundreds of thousands of times, so formatting avoids `datetime.strftime` and caches
the date part per day. Every timestamp the simulator emits has the Genesys shape
`YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, milliseconds).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
_EPOCH_DATE = date(1970, 1, 1)


@lru_cache(maxsize=8192)
def _day_prefix(day: int) -> str:
    return (_EPOCH_DATE + timedelta(days=day)).isoformat() + "T"


def format_ms(ms: int) -> str:
    """Epoch milliseconds -> `2026-05-01T10:02:11.204Z`."""
    day, rem = divmod(ms, DAY_MS)
    hours, rem = divmod(rem, HOUR_MS)
    minutes, rem = divmod(rem, 60_000)
    seconds, millis = divmod(rem, 1000)
    return f"{_day_prefix(day)}{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}Z"


def to_ms(moment: datetime) -> int:
    """A tz-aware datetime -> epoch milliseconds (floor)."""
    if moment.tzinfo is None:
        raise ValueError(f"datetime {moment.isoformat()} has no timezone; use UTC")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return delta.days * DAY_MS + delta.seconds * 1000 + delta.microseconds // 1000


def from_ms(ms: int) -> datetime:
    """Epoch milliseconds -> tz-aware UTC datetime."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def parse_instant(text: str) -> int:
    """Parse one ISO-8601 instant with a timezone (`Z` or `+hh:mm`) into epoch ms.

    Raises ValueError naming the bad text. Naive instants are rejected: Genesys intervals carry a zone.
    """
    raw = text.strip()
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"'{text}' is not an ISO-8601 date-time") from None
    if moment.tzinfo is None:
        raise ValueError(f"'{text}' has no timezone (append 'Z' for UTC)")
    return to_ms(moment)


def parse_interval(text: object) -> tuple[int, int]:
    """Parse `start/end` into (start_ms, end_ms); raises ValueError with a readable reason."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("interval must be a string 'start/end' of ISO-8601 date-times")
    parts = text.split("/")
    if len(parts) != 2:
        raise ValueError(f"interval '{text}' must have the form 'start/end'")
    start_ms = parse_instant(parts[0])
    end_ms = parse_instant(parts[1])
    if end_ms <= start_ms:
        raise ValueError(f"interval '{text}' ends before or at its start")
    return start_ms, end_ms


def floor_day(ms: int) -> int:
    """Midnight UTC at or before `ms`."""
    return ms - ms % DAY_MS
