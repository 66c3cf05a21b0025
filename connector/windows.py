"""Time windows: which slice of time to query next.

- `Window`: a half-open interval `[start, end)` in UTC with millisecond precision (what Genesys accepts).
- `WindowPlanner`: the next first-pass window after the watermark. Windows end at `now - lag` at the latest
  (Genesys is still indexing "now"), never beyond `windows.end`, and are aligned to multiples of their length
  in UTC so that restarts and re-scans hit the same boundaries. While the connector is behind, windows grow
  up to `max_catchup_length`: fewer requests and fewer conversations duplicated across boundaries.

When a finished slice is queried again (settlement re-scans) is `connector.state.progress`'s business.

Pure logic: the time comes from an injected `Clock`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from connector.clock import Clock, format_instant
from connector.config import WindowsSettings

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _truncate_ms(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def align_down(value: datetime, step: timedelta) -> datetime:
    """The latest multiple of `step` since the Unix epoch (UTC) that is <= `value`."""
    return _EPOCH + ((value - _EPOCH) // step) * step


@dataclass(frozen=True, order=True)
class Window:
    """A half-open time interval `[start, end)`, tz-aware UTC, truncated to milliseconds.

    Ordered by start then end, so windows (and pass keys built from them) sort chronologically.
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        object.__setattr__(self, "start", _truncate_ms(self.start.astimezone(UTC)))
        object.__setattr__(self, "end", _truncate_ms(self.end.astimezone(UTC)))
        if self.start >= self.end:
            raise ValueError(f"window start must be before its end ({self.start} >= {self.end})")

    @property
    def interval(self) -> str:
        """The ISO-8601 interval Genesys takes: `2026-05-01T10:00:00.000Z/2026-05-01T10:05:00.000Z`."""
        return f"{format_instant(self.start)}/{format_instant(self.end)}"

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    @property
    def can_split(self) -> bool:
        """True when both halves would be at least a millisecond long."""
        return self.duration >= 2 * _MS

    def split(self) -> tuple[Window, Window]:
        """Two halves `[start, mid)` and `[mid, end)`; used when a window holds too many conversations."""
        if not self.can_split:
            raise ValueError(f"window {self.interval} is too short to split")
        mid = _truncate_ms(self.start + self.duration / 2)
        return Window(self.start, mid), Window(mid, self.end)

    def __str__(self) -> str:
        return self.interval


class WindowPlanner:
    """Plans first-pass windows from the watermark (where the previous first-pass window ended)."""

    def __init__(self, config: WindowsSettings, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._start: datetime | None = None

    def initial_start(self) -> datetime:
        """Where reading begins without a checkpoint. A relative start (`-7d`) is resolved once, on first
        use, and aligned down to the window length so boundaries are round."""
        if self._start is None:
            start = self._config.resolve_start(self._clock.now())
            if not isinstance(self._config.start, datetime):
                start = align_down(start, self._config.length)
            self._start = _truncate_ms(start)
        return self._start

    def limit(self) -> datetime:
        """The latest instant a window may end at right now: `now - lag`, capped by `windows.end`."""
        limit = self._clock.now() - self._config.lag
        if self._config.end is not None:
            limit = min(limit, self._config.end)
        return _truncate_ms(limit)

    def next_window(self, watermark: datetime | None) -> Window | None:
        """The next first-pass window starting at `watermark` (or the configured start when None).

        None means "nothing to do yet" (caught up: wait `poll_interval`) or "done" (see `is_finished`).
        """
        start = watermark if watermark is not None else self.initial_start()
        limit = self.limit()
        if start >= limit:
            return None
        length = self._config.length
        target = self._config.max_catchup_length if limit - start >= 2 * length else length
        end = align_down(start + target, target)
        if end > limit:
            end = align_down(limit, length)
            if end <= start:
                if self._config.end is not None and limit == self._config.end:
                    end = limit  # the last, partial window of a bounded run
                else:
                    return None
        return Window(start, end)

    def is_finished(self, watermark: datetime | None) -> bool:
        """True when a bounded run (`windows.end`) has read everything before its end."""
        return self._config.end is not None and watermark is not None and watermark >= self._config.end

    def next_window_ready_in(self, watermark: datetime | None) -> timedelta | None:
        """How long until `next_window` returns a window: zero if one is ready, None if the run is finished.

        While caught up this is the time until `now - lag` reaches the next window boundary; the app can
        sleep that long instead of polling.
        """
        if self.is_finished(watermark):
            return None
        if self.next_window(watermark) is not None:
            return timedelta(0)
        start = watermark if watermark is not None else self.initial_start()
        boundary = align_down(start, self._config.length) + self._config.length
        if self._config.end is not None:
            boundary = min(boundary, self._config.end)
        return max(timedelta(0), boundary + self._config.lag - self._clock.now())

    def is_behind(self, watermark: datetime | None) -> bool:
        """The opposite of `is_caught_up` (True before the first window)."""
        return not self.is_caught_up(watermark)

    def is_caught_up(self, watermark: datetime | None) -> bool:
        """True when less than two window lengths separate the watermark from `now - lag`.

        The app uses it to switch the pacer between `budget_share` and `live_budget_share`.
        """
        if watermark is None:
            return False
        return self.limit() - watermark < 2 * self._config.length
