"""Time windows: which slice of time to query next, and when to query a finished slice again.

- `Window`: a half-open interval `[start, end)` in UTC with millisecond precision (what Genesys accepts).
- `WindowPlanner`: the next first-pass window after the watermark. Windows end at `now - lag` at the latest
  (Genesys is still indexing "now"), never beyond `windows.end`, and are aligned to multiples of their length
  in UTC so that restarts and re-scans hit the same boundaries. While the connector is behind, windows grow
  up to `max_catchup_length`: fewer requests and fewer conversations duplicated across boundaries.
- `RescanSchedule`: settlement re-scans of a completed window at `window.end + delay` for each configured
  delay (pass 1..n), to pick up changes made after a conversation ended (wrap-up, evaluations, surveys).

Pure logic: the time comes from an injected `Clock`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.clock import Clock, format_instant
from connector.config import WindowsSettings

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def parse_instant(text: str) -> datetime:
    """Inverse of `format_instant` (accepts any ISO-8601 instant with an offset or `Z`)."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"instant without a timezone: {text!r}")
    return value.astimezone(UTC)


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

    @classmethod
    def parse(cls, interval: str) -> Window:
        """Inverse of `interval`."""
        start, sep, end = interval.partition("/")
        if not sep:
            raise ValueError(f"not an interval (start/end): {interval!r}")
        return cls(parse_instant(start), parse_instant(end))

    def to_dict(self) -> dict[str, str]:
        return {"start": format_instant(self.start), "end": format_instant(self.end)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Window:
        return cls(parse_instant(str(data["start"])), parse_instant(str(data["end"])))

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


@dataclass(frozen=True, order=True)
class Rescan:
    """Settlement re-scan number `pass_no` (1..n) of `window`, due at `due_at`."""

    due_at: datetime
    window: Window
    pass_no: int


class RescanSchedule:
    """Which completed windows must be read again, and when.

    A window whose first pass completed gets passes 1..n due at `window.end + delays[i]`. When several passes
    of one window are due at once (after downtime), only the highest is returned: it reads the same data,
    later. Completing pass k of a window drops its passes <= k. Entries saved in a checkpoint keep their due
    times even if the configured delays change later.
    """

    def __init__(self, delays: Sequence[timedelta], pending: Iterable[Rescan] = ()) -> None:
        self._delays = list(delays)
        self._pending: set[Rescan] = set(pending)

    @staticmethod
    def due_times(window: Window, delays: Sequence[timedelta]) -> list[Rescan]:
        """Passes 1..n of `window` for the given delays."""
        return [Rescan(window.end + delay, window, n) for n, delay in enumerate(delays, start=1)]

    def schedule(self, window: Window) -> list[Rescan]:
        """The first pass of `window` completed: schedule its re-scans (returned, sorted by due time)."""
        added = self.due_times(window, self._delays)
        self._pending.update(added)
        return added

    def due(self, now: datetime) -> list[Rescan]:
        """Re-scans due at `now`, the highest pass per window, earliest first."""
        best: dict[Window, Rescan] = {}
        for rescan in self._pending:
            if rescan.due_at <= now:
                current = best.get(rescan.window)
                if current is None or rescan.pass_no > current.pass_no:
                    best[rescan.window] = rescan
        return sorted(best.values())

    def complete(self, window: Window, pass_no: int) -> None:
        """Pass `pass_no` of `window` is done (all pages acknowledged): drop it and any lower pass."""
        self._pending = {r for r in self._pending if not (r.window == window and r.pass_no <= pass_no)}

    def next_due_at(self) -> datetime | None:
        """When the earliest pending re-scan is due (None when nothing is scheduled)."""
        return min((r.due_at for r in self._pending), default=None)

    def pending(self) -> list[Rescan]:
        """Every scheduled re-scan, earliest first."""
        return sorted(self._pending)

    def __len__(self) -> int:
        return len(self._pending)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the checkpoint."""
        return {
            "pending": [
                {**r.window.to_dict(), "pass": r.pass_no, "due_at": format_instant(r.due_at)}
                for r in self.pending()
            ]
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], delays: Sequence[timedelta]) -> RescanSchedule:
        """Inverse of `to_dict`; `delays` apply to windows scheduled from now on."""
        pending = [
            Rescan(parse_instant(str(item["due_at"])), Window.from_dict(item), int(item["pass"]))
            for item in data.get("pending", [])
        ]
        return cls(delays, pending)
